//! TODO module telemetry
