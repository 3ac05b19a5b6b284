//! Pure telemetry codecs and rules, without I/O: the validation of a device's
//! `ReadingBatch` ([`validate`]) and the decoding of a bus `TelemetryMessage`
//! ([`bus::decode`]). The ingest service calls them; the fuzz targets in `fuzz/`
//! and the property tests call them on arbitrary input.
//!
//! Invariants:
//! - neither function panics, whatever its input (fuzzed and property-tested);
//! - a batch accepted by [`validate::validate`] holds at most `max_batch_readings`
//!   readings, every one finite, inside the timestamp window, of a known quality, and
//!   its series groups are in normal delta form (first delta 0), so no later sum of
//!   deltas overflows;
//! - [`bus::decode`] accepts a message only if its tenant and every series' machine
//!   match the subject, and returns only finite points of quality 1..=3;
//! - what ingest publishes for an accepted batch, the writer decodes back to the same
//!   readings (`validate` then `bus::decode` round-trips; see `tests/decoders_prop.rs`).

pub mod bus;
pub mod validate;
