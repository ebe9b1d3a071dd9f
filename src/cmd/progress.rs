//! Progress on stderr, one way for every command: an indicatif bar or spinner on a terminal;
//! without one (stderr piped to a file, `--quiet`) the bar is hidden and the commands log a
//! line per finished unit of work instead, or every [`LOG_EVERY`] for long units.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a long unit of work logs a line when no bar is drawn.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// A spinner with `msg` and the elapsed time (hidden without a terminal).
pub fn spinner(msg: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("valid"));
    bar.enable_steady_tick(Duration::from_millis(200));
    bar.set_message(msg.to_string());
    bar
}

/// A spinner that no `--quiet` run draws.
pub fn spinner_unless(quiet: bool, msg: &str) -> ProgressBar {
    if quiet {
        ProgressBar::hidden()
    } else {
        spinner(msg)
    }
}

/// A bar over `len` units with `template` (indicatif's syntax), ticking twice a second.
pub fn bar(len: usize, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(ProgressStyle::with_template(template).expect("valid template"));
    bar.enable_steady_tick(Duration::from_millis(500));
    bar
}

/// A bar over the steps of a training run, labelled `msg`: position, loss, steps/s, ETA.
pub fn steps_bar(steps: usize, msg: String) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} steps, loss {prefix}, {per_sec}, {elapsed} (ETA {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(msg);
    bar
}

/// Whether a command should log lines: `--quiet`, or no terminal to draw `bar` on.
pub fn logs_lines(quiet: bool, bar: &ProgressBar) -> bool {
    quiet || bar.is_hidden()
}

/// Prints a line above the bar, or to stderr when the bar is hidden (not a terminal).
pub fn say(bar: &ProgressBar, line: impl AsRef<str>) {
    if bar.is_hidden() {
        eprintln!("{}", line.as_ref());
    } else {
        bar.println(line);
    }
}

/// A training run's progress callback: moves `bar`, or without a terminal logs a line every
/// [`LOG_EVERY`] (and at the end), prefixed with `label`.
pub fn step_logger<'a>(
    bar: &'a ProgressBar,
    label: String,
) -> impl FnMut(unas_evaluator::quality::supernet::StepInfo) + 'a {
    let mut every = Every::new(LOG_EVERY);
    move |i| {
        bar.set_position(i.step as u64);
        bar.set_prefix(format!("{:.4}", i.loss));
        if bar.is_hidden() && (every.due() || i.step == i.steps) {
            eprintln!("{label}step {}/{} loss {:.4}", i.step, i.steps, i.loss);
        }
    }
}

/// True at most once per period (the first call included).
pub struct Every {
    period: Duration,
    last: Option<Instant>,
}

impl Every {
    /// A throttle of `period`.
    pub fn new(period: Duration) -> Self {
        Self { period, last: None }
    }

    /// Whether a period has passed since the last `true` (always on the first call).
    pub fn due(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.period)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_is_due_first_then_once_per_period() {
        let mut e = Every::new(Duration::from_secs(3600));
        assert!(e.due());
        assert!(!e.due());
        let mut z = Every::new(Duration::ZERO);
        assert!(z.due() && z.due());
    }

    #[test]
    fn a_hidden_bar_logs_lines() {
        let hidden = ProgressBar::hidden();
        assert!(logs_lines(false, &hidden));
        assert!(logs_lines(true, &hidden));
    }
}
