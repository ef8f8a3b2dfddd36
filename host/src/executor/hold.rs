//! What a step's hold means in wall-clock time.

use std::time::Duration;

use crate::op_model::HoldSpec;

pub(super) enum Hold {
    Sleep(Duration),
    /// Re-apply the step's ops every `interval` for `total`.
    Loop {
        interval: Duration,
        total: Duration,
    },
}

/// The time a hold keeps the step running, given the scenario duration.
pub fn hold_duration(h: &HoldSpec, scenario_ms: u64) -> Duration {
    match h {
        HoldSpec::Frac(f) => Duration::from_secs_f64((f * scenario_ms as f64 / 1000.0).max(0.0)),
        HoldSpec::FixedMs(ms) => Duration::from_millis(*ms),
        HoldSpec::LoopMs(_) => Duration::from_millis(scenario_ms),
    }
}

pub(super) fn plan(h: &HoldSpec, scenario_ms: u64) -> Hold {
    match h {
        HoldSpec::LoopMs(interval) => {
            Hold::Loop { interval: Duration::from_millis(*interval), total: Duration::from_millis(scenario_ms) }
        }
        other => Hold::Sleep(hold_duration(other, scenario_ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(hold_duration(&HoldSpec::Frac(0.5), 3000), Duration::from_millis(1500));
        assert_eq!(hold_duration(&HoldSpec::FixedMs(200), 3000), Duration::from_millis(200));
        assert_eq!(hold_duration(&HoldSpec::LoopMs(10), 3000), Duration::from_millis(3000));
    }
}
