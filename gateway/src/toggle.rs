//! Toggle state: which side serves each capability.
//!
//! A [`Toggles`] value is immutable once built: a change produces a complete new value that is
//! swapped in whole (see [`crate::live`]), so a reader never sees half a change.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Number of sticky buckets a key is hashed into; `percent` N sends buckets below `N * 100`.
pub const BUCKETS: u32 = 10_000;

/// The state of one capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase", deny_unknown_fields)]
pub enum ToggleState {
    /// Legacy answers everything.
    Legacy,
    /// New answers everything.
    New,
    /// `percent` of sticky keys go to new.
    Percent {
        /// 0..=100.
        percent: u8,
    },
    /// Legacy answers; a sample (`percent` of sticky keys) is also sent to new for comparison.
    Shadow {
        /// 0..=100.
        percent: u8,
    },
}

impl ToggleState {
    /// Builds a state from the admin API's / config's `state` and optional `percent`.
    pub fn from_parts(state: &str, percent: Option<u8>) -> Result<ToggleState, String> {
        let checked = |p: u8| {
            if p > 100 {
                Err(format!("percent {p} is over 100"))
            } else {
                Ok(p)
            }
        };
        match (state, percent) {
            ("legacy", None) => Ok(ToggleState::Legacy),
            ("new", None) => Ok(ToggleState::New),
            ("legacy" | "new", Some(_)) => Err(format!("state `{state}` takes no percent")),
            ("percent", Some(p)) => Ok(ToggleState::Percent {
                percent: checked(p)?,
            }),
            ("percent", None) => Err("state `percent` needs a percent (0..=100)".to_string()),
            ("shadow", p) => Ok(ToggleState::Shadow {
                percent: checked(p.unwrap_or(100))?,
            }),
            (other, _) => Err(format!(
                "unknown state `{other}`; expected legacy, new, percent or shadow"
            )),
        }
    }

    /// The state's name without its percentage.
    pub fn name(&self) -> &'static str {
        match self {
            ToggleState::Legacy => "legacy",
            ToggleState::New => "new",
            ToggleState::Percent { .. } => "percent",
            ToggleState::Shadow { .. } => "shadow",
        }
    }

    /// All state names, for metrics.
    pub const NAMES: [&'static str; 4] = ["legacy", "new", "percent", "shadow"];
}

impl fmt::Display for ToggleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ToggleState::Percent { percent } => write!(f, "percent {percent}"),
            ToggleState::Shadow { percent } => write!(f, "shadow {percent}"),
            other => f.write_str(other.name()),
        }
    }
}

/// One capability's toggle: its state, the state before the last change (for rollback) and a
/// version that grows by one with every change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toggle {
    /// Current state.
    pub state: ToggleState,
    /// State before the last change; rollback goes back to it.
    pub previous: Option<ToggleState>,
    /// Number of changes applied so far.
    pub version: u64,
}

impl Toggle {
    /// A toggle that has never changed.
    pub fn initial(state: ToggleState) -> Toggle {
        Toggle {
            state,
            previous: None,
            version: 0,
        }
    }

    /// The toggle after moving to `to`.
    pub fn changed_to(&self, to: ToggleState) -> Toggle {
        Toggle {
            state: to,
            previous: Some(self.state),
            version: self.version + 1,
        }
    }
}

/// The toggles of every capability, in the route table's capability order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toggles(pub Vec<Toggle>);

impl Toggles {
    /// The toggle of capability `index`; `Legacy` for an index the table does not know.
    pub fn state(&self, index: usize) -> ToggleState {
        self.0.get(index).map_or(ToggleState::Legacy, |t| t.state)
    }

    /// A copy with capability `index` replaced.
    pub fn with(&self, index: usize, toggle: Toggle) -> Toggles {
        let mut next = self.0.clone();
        if let Some(slot) = next.get_mut(index) {
            *slot = toggle;
        }
        Toggles(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admin input turns into states, and bad input says what is wrong.
    #[test]
    fn parses_states_from_parts() {
        let cases: &[(&str, Option<u8>, Result<ToggleState, &str>)] = &[
            ("legacy", None, Ok(ToggleState::Legacy)),
            ("new", None, Ok(ToggleState::New)),
            (
                "percent",
                Some(20),
                Ok(ToggleState::Percent { percent: 20 }),
            ),
            ("shadow", None, Ok(ToggleState::Shadow { percent: 100 })),
            ("shadow", Some(5), Ok(ToggleState::Shadow { percent: 5 })),
            ("percent", None, Err("needs a percent")),
            ("percent", Some(101), Err("over 100")),
            ("new", Some(3), Err("takes no percent")),
            ("blue", None, Err("unknown state `blue`")),
        ];
        for (state, percent, want) in cases {
            let got = ToggleState::from_parts(state, *percent);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, *w, "{state} {percent:?}"),
                (Err(g), Err(w)) => assert!(g.contains(w), "{state} {percent:?}: {g}"),
                (g, w) => panic!("{state} {percent:?}: got {g:?}, want {w:?}"),
            }
        }
    }

    /// A change remembers the state it replaced, so rollback can return to it.
    #[test]
    fn change_keeps_previous_state() {
        let t = Toggle::initial(ToggleState::Legacy).changed_to(ToggleState::New);
        assert_eq!(t.previous, Some(ToggleState::Legacy));
        assert_eq!(t.version, 1);
    }
}
