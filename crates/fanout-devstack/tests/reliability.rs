//! Every fault scenario against every consumer's real binary (`fanout_devstack::reliability`):
//! nothing lost but what Lambda drops and pages about, nothing doubled but in a documented
//! window (asserted at its measured count), nothing acted on that must not be, every poison
//! record parked once, every shard moved on. The table it produces is docs/reliability.md's
//! "Reliability" table, checked here so page and code agree (`make reliability-table`
//! rewrites it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use fanout_devstack::demo::DemoOptions;
use fanout_devstack::observe::Described;
use fanout_devstack::reliability::{Drive, Row, Timing, run_row, scenarios, table};
use fanout_esm::MappingSettings;
use fanout_registry::descriptor::ObservedIn;

/// The documented windows (docs/reliability.md): how many repeats a scenario may make for a
/// consumer, from that consumer's deployed settings. Every other row must double nothing.
///
/// Only consumers whose effect the ledger guards (`ledgerEffects`: an email, a CRM event) have
/// windows; the others' targets absorb a repeat (a versioned document, a conditional row). A
/// consumer observed only through its ledger entries shows no repeat of its call (descriptor
/// `observed-in = "ledger"`), so none is counted for it.
fn documented_window(scenario: &str, consumer: &Described, expected_effects: usize) -> usize {
    if consumer.entry.settings["ledgerEffects"] != true
        || consumer.descriptor.observed_in == ObservedIn::Ledger
    {
        return 0;
    }
    let consumer = &consumer.entry;
    let retries = MappingSettings::from_json(consumer.event_source_mapping())
        .expect("the registry's mapping settings parse")
        .maximum_retry_attempts as usize;
    match scenario {
        // The target acted but its answer never came back: the record fails and its next
        // delivery repeats the effect, once per lost answer.
        "effect's response dropped once" => 1,
        // Every answer lost: every retry repeats the effect of the batch's first record, until
        // the mapping gives the batch to the OnFailure destination.
        "effect's response always dropped" => retries,
        // The effect is made but never recorded: one repeat per effect, on the first delivery
        // after its lease ends.
        "complete fails every time; the batch redelivered after the lease" => expected_effects,
        // Killed between the effect and its record: one repeat, after the dead holder's lease.
        "SIGKILL after the effect, before complete" => 1,
        _ => 0,
    }
}

/// `make reliability-table`: docs/reliability.md's table is rewritten from this run, every
/// consumer in it.
fn updating() -> bool {
    std::env::var_os("FANOUT_UPDATE_TABLE").is_some()
}

const README_BEGIN: &str = "<!-- reliability-table:begin -->\n";
const README_END: &str = "<!-- reliability-table:end -->";
/// The page whose table the run checks (and rewrites under `make reliability-table`).
const PAGE: &str = "docs/reliability.md";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_fault_scenario_loses_nothing_and_doubles_only_in_its_documented_window() {
    let options = DemoOptions::default();
    let log_dir = options.functions_dir.join("../reliability-logs");
    std::fs::create_dir_all(&log_dir).unwrap();
    let consumers = Described::all().unwrap();
    // Rows run at once (most of a row is waiting), a few at a time so the local servers keep up.
    let limit = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for scenario in scenarios() {
        for consumer in &consumers {
            if !scenario.applies_to(consumer) {
                continue;
            }
            let (scenario, consumer) = (scenario.clone(), consumer.clone());
            let (functions, logs, limit) = (
                options.functions_dir.clone(),
                log_dir.clone(),
                Arc::clone(&limit),
            );
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await.unwrap();
                let name = format!("{} / {}", scenario.name, consumer.entry.crate_name);
                let outcome = run_row(consumer.clone(), &scenario, &functions, &logs)
                    .await
                    .map_err(|e| e.to_string());
                (name, consumer, scenario.clone(), outcome)
            }));
        }
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut problems = Vec::new();
    for task in tasks {
        let (name, consumer, scenario, outcome) = task.await.unwrap();
        let drive = scenario.drive.clone();
        match outcome {
            Ok(row) => {
                let window = documented_window(&row.scenario, &consumer, row.expected);
                // A loss is allowed only where Lambda itself dropped the records, and then it
                // pages: never a silent one.
                let paged = row.alarms.contains(&"DroppedEvents (page)");
                if row.lost != 0 && !(paged && row.lost <= row.dropped) {
                    problems.push(format!(
                        "{name}: {} effect(s) lost, {} record(s) dropped, alarms {:?}",
                        row.lost, row.dropped, row.alarms
                    ));
                }
                if row.unexpected != 0 {
                    problems.push(format!(
                        "{name}: {} effect(s) made for a user whose records must not be acted on",
                        row.unexpected
                    ));
                }
                if scenario.timing == Timing::BudgetOverTimeout && row.logged_errors != 1 {
                    problems.push(format!(
                        "{name}: a budget over the invocation's time logged {} ERROR lines, not one",
                        row.logged_errors
                    ));
                }
                if row.doubled != window {
                    problems.push(format!(
                        "{name}: doubled {}, documented {window}",
                        row.doubled
                    ));
                }
                if row.personal_data != 0 {
                    problems.push(format!(
                        "{name}: personal data {} times in logs or parked errors",
                        row.personal_data
                    ));
                }
                if !row.progressed {
                    problems.push(format!("{name}: the shard did not move on"));
                }
                let poison = matches!(drive, Drive::Poison | Drive::PoisonRedelivered);
                if poison && row.parked != 1 {
                    problems.push(format!(
                        "{name}: the poison record parked {} times",
                        row.parked
                    ));
                }
                rows.push(row);
            }
            Err(err) => problems.push(format!("{name}: could not run: {err}")),
        }
    }
    let generated = table(&rows);
    let target = fanout_testkit::workspace_root().join("target/reliability.md");
    std::fs::write(&target, &generated).unwrap();

    let readme_path = fanout_testkit::workspace_root().join(PAGE);
    let readme = std::fs::read_to_string(&readme_path).unwrap();
    let (Some(begin), Some(end)) = (readme.find(README_BEGIN), readme.find(README_END)) else {
        panic!("{PAGE} has no {README_BEGIN:?} ... {README_END:?} section");
    };
    let current = &readme[begin + README_BEGIN.len()..end];
    // The page's table shows the consumers it names (the shipped ones): a consumer a team has
    // just added runs every scenario above, and its rows wait in target/reliability.md until
    // `make reliability-table` puts them in the page.
    let in_readme: Vec<&str> = current
        .lines()
        .filter_map(|line| line.split(" | ").nth(1))
        .collect();
    let shown: Vec<Row> = rows
        .iter()
        .filter(|row| in_readme.contains(&row.consumer.as_str()) || updating())
        .cloned()
        .collect();
    let for_readme = table(&shown);
    if current != for_readme {
        if updating() {
            let updated = format!(
                "{}{for_readme}{}",
                &readme[..begin + README_BEGIN.len()],
                &readme[end..]
            );
            std::fs::write(&readme_path, updated).unwrap();
        } else {
            problems.push(format!(
                "{PAGE}'s reliability table differs from this run ({}): run `make reliability-table`",
                target.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{generated}\n{}", problems.join("\n"));
}
