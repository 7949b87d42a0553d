//! How a stage's steps are numbered in progress lines and in a dry run:
//! `[name i/n]`, as BuildKit numbers its vertices. FROM and every RUN, COPY,
//! ADD and WORKDIR count; metadata steps (ARG, ENV, LABEL, USER…) take the
//! number of the step before them.

use super::stage::StagePlan;
use super::step::StepKind;

impl StepKind {
    /// Whether a step counts in `[i/n]` (it is a vertex in BuildKit's graph).
    pub fn is_counted(&self) -> bool {
        matches!(
            self,
            StepKind::Run(_) | StepKind::Copy(_) | StepKind::Add(_) | StepKind::Workdir(_)
        )
    }
}

/// The `[name i/n]` prefix of a stage's steps, starting at its FROM (1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepCounter {
    name: String,
    index: usize,
    total: usize,
}

impl StepCounter {
    /// A counter at the FROM of stage `name` (its display name; empty for
    /// a lone unnamed stage) of `total` counted steps.
    pub fn new(name: String, total: usize) -> Self {
        Self {
            name,
            index: 1,
            total,
        }
    }

    /// The number of counted steps of `plan`: its FROM and its counted steps.
    pub fn total_of(plan: &StagePlan) -> usize {
        1 + plan.steps.iter().filter(|s| s.kind.is_counted()).count()
    }

    /// Sets the total, once a stage's plan (with an image's triggers) is known.
    pub fn set_total(&mut self, total: usize) {
        self.total = total;
    }

    /// The prefix of the step at hand (the FROM before any [`Self::step`]).
    pub fn current(&self) -> String {
        if self.name.is_empty() {
            format!("[{}/{}]", self.index, self.total)
        } else {
            format!("[{} {}/{}]", self.name, self.index, self.total)
        }
    }

    /// The prefix of the next step of kind `kind`: a counted step moves
    /// the count on, a metadata step shares the number before it.
    pub fn step(&mut self, kind: &StepKind) -> String {
        if kind.is_counted() {
            self.index += 1;
        }
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_steps_share_the_number_before_them() {
        let mut counter = StepCounter::new("build".into(), 3);
        assert_eq!(counter.current(), "[build 1/3]");
        assert_eq!(counter.step(&StepKind::User("app".into())), "[build 1/3]");
        assert_eq!(
            counter.step(&StepKind::Workdir("/app".into())),
            "[build 2/3]"
        );
        assert_eq!(counter.step(&StepKind::Label(Vec::new())), "[build 2/3]");
        let mut lone = StepCounter::new(String::new(), 2);
        assert_eq!(lone.step(&StepKind::Workdir("/".into())), "[2/2]");
    }
}
