"""Operations: retry sensors, fill jobs and schedules, checks, the instance's concurrency settings."""
