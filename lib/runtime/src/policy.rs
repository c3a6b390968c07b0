//! When a process takes snapshots, and what it does after one: the typed
//! policy that `wasnap run`'s `--snapshot-*` options and embedders fill in.

use std::time::Duration;

use wasnap_journal::SnapshotTrigger;

/// When to snapshot. The default takes no snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// What fires a snapshot (names: [`SnapshotTrigger::name`]).
    pub triggers: Vec<SnapshotTrigger>,
    /// With [`SnapshotTrigger::Interval`]: snapshot at the first snapshot
    /// point after each interval.
    pub interval: Option<Duration>,
    /// Stop cleanly after the first snapshot.
    pub stop_after: bool,
    /// With [`SnapshotTrigger::Sigint`]: after Ctrl-C, how long to wait for
    /// a snapshot point before exiting (130) without a snapshot.
    pub sigint_grace: Duration,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy {
            triggers: Vec::new(),
            interval: None,
            stop_after: false,
            sigint_grace: Duration::from_secs(5),
        }
    }
}

/// A policy that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The interval trigger without an interval.
    #[error("the interval trigger needs an interval (--snapshot-interval DURATION)")]
    NoInterval,
}

impl SnapshotPolicy {
    /// A policy with these triggers and the defaults otherwise.
    pub fn on(triggers: impl IntoIterator<Item = SnapshotTrigger>) -> Self {
        SnapshotPolicy {
            triggers: triggers.into_iter().collect(),
            ..SnapshotPolicy::default()
        }
    }

    /// Whether `trigger` is armed.
    pub fn has(&self, trigger: SnapshotTrigger) -> bool {
        self.triggers.contains(&trigger)
    }

    /// Whether any trigger is armed.
    pub fn takes_snapshots(&self) -> bool {
        !self.triggers.is_empty()
    }

    /// The policy as it will run: an interval arms the interval trigger;
    /// the interval trigger needs an interval.
    pub fn checked(mut self) -> Result<Self, PolicyError> {
        if self.interval.is_some() && !self.has(SnapshotTrigger::Interval) {
            self.triggers.push(SnapshotTrigger::Interval);
        }
        if self.has(SnapshotTrigger::Interval) && self.interval.is_none() {
            return Err(PolicyError::NoInterval);
        }
        Ok(self)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_arms_its_trigger_and_the_trigger_needs_one() {
        let policy = SnapshotPolicy {
            interval: Some(Duration::from_millis(5)),
            ..SnapshotPolicy::default()
        };
        assert!(policy.checked().unwrap().has(SnapshotTrigger::Interval));
        assert_eq!(
            SnapshotPolicy::on([SnapshotTrigger::Interval]).checked(),
            Err(PolicyError::NoInterval)
        );
        assert!(!SnapshotPolicy::default().takes_snapshots());
    }
}
