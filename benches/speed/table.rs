//! The one table `cargo bench` prints: every figure side by side, times as
//! multiples of the crypto floor measured in the same run.

use std::fmt::Write as _;

/// A goal a figure is held to, and whether it was met.
pub struct Goal {
    pub text: String,
    pub met: bool,
}

impl Goal {
    pub fn new(text: impl Into<String>, met: bool) -> Option<Goal> {
        Some(Goal {
            text: text.into(),
            met,
        })
    }
}

/// One line of the table.
pub enum Row {
    /// A cost per request; shown with its rate and as a multiple of the floor.
    Time {
        name: String,
        ns: f64,
        goal: Option<Goal>,
    },
    /// Anything else (memory, start-up), with its unit in `value`.
    Figure {
        name: String,
        value: String,
        goal: Option<Goal>,
    },
    /// A figure that could not be measured, and why.
    #[allow(dead_code)] // until a figure needs a tool the machine may lack
    Note(String),
}

impl Row {
    pub fn time(name: impl Into<String>, ns: f64, goal: Option<Goal>) -> Row {
        Row::Time {
            name: name.into(),
            ns,
            goal,
        }
    }

    pub fn figure(name: impl Into<String>, value: impl Into<String>, goal: Option<Goal>) -> Row {
        Row::Figure {
            name: name.into(),
            value: value.into(),
            goal,
        }
    }

    #[allow(dead_code)]
    pub fn note(text: impl Into<String>) -> Row {
        Row::Note(text.into())
    }

    fn goal(&self) -> Option<&Goal> {
        match self {
            Row::Time { goal, .. } | Row::Figure { goal, .. } => goal.as_ref(),
            Row::Note(_) => None,
        }
    }
}

fn verdict(goal: &Option<Goal>) -> String {
    match goal {
        Some(goal) => format!("{} {}", goal.text, if goal.met { "ok" } else { "MISSED" }),
        None => String::new(),
    }
}

/// The table as text; `floor_ns` is what every time is a multiple of.
pub fn render(rows: &[Row], floor_ns: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<46} {:>11} {:>11} {:>8}  goal",
        "", "per request", "per second", "x floor"
    );
    for row in rows {
        let _ = match row {
            Row::Time { name, ns, goal } => writeln!(
                out,
                "{name:<46} {:>8.0} ns {:>11} {:>8.2}  {}",
                ns,
                rate(1e9 / ns),
                ns / floor_ns,
                verdict(goal)
            ),
            Row::Figure { name, value, goal } => {
                writeln!(out, "{name:<46} {value:>32}  {}", verdict(goal))
            }
            Row::Note(text) => writeln!(out, "{text}"),
        };
    }
    out
}

/// The goals that were missed, by name.
pub fn missed(rows: &[Row]) -> Vec<String> {
    rows.iter()
        .filter(|row| row.goal().is_some_and(|goal| !goal.met))
        .map(|row| match row {
            Row::Time { name, .. } | Row::Figure { name, .. } => name.clone(),
            Row::Note(text) => text.clone(),
        })
        .collect()
}

fn rate(per_second: f64) -> String {
    if per_second >= 1e6 {
        format!("{:.2} M", per_second / 1e6)
    } else {
        format!("{:.0} k", per_second / 1e3)
    }
}
