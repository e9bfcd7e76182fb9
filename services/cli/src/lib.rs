//! The library half of the `govpulse` command: what tests drive as well as the command.

pub mod freshness;
pub mod loadgen;
pub mod procedures;
pub mod simulate;
