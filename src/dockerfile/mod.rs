//! The Dockerfile front end: parsing, directives, heredocs, shell-word
//! expansion and the typed instructions the planner consumes.

pub mod expand;
