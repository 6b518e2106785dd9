//! `fanout-local demo`: the whole fan-out on the local stack. The scenario is data
//! ([`scenario`], `scenarios/demo.json`), the runner executes it ([`run`]), and the report
//! prints it ([`report`]).

pub mod deployed;
pub mod report;
pub mod run;
pub mod scenario;

pub use run::{Check, DemoError, DemoOptions, DemoReport, run};
pub use scenario::Scenario;
