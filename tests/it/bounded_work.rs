//! Work that must stay bounded whatever the data: a listing's total is
//! counted only up to `--exact-total-limit`, and a dialing-list upload is
//! written in chunks, folding a number given twice.

use std::collections::BTreeMap;

use callscope::config::ServeConfig;
use callscope::proto::{
    CallFilter, ListCallsRequest, ListTaskNumbersRequest, TaskNumberInput, UpsertTaskNumbersRequest,
};

use crate::helpers::{TestApp, call};

pub fn trials() -> Vec<libtest_mimic::Trial> {
    let mut trials = bounded_totals::trials();
    trials.extend(bounded_uploads::trials());
    trials
}

mod bounded_totals {
    use super::*;

    fn count_up_to_five(config: &mut ServeConfig) {
        config.exact_total_limit = 5;
    }

    crate::backend_tests!(config: count_up_to_five;
        totals_are_exact_up_to_the_limit_then_capped,
    );
}

mod bounded_uploads {
    use super::*;

    crate::backend_tests!(uploads_fold_repeated_numbers_across_chunks,);
}

async fn totals_are_exact_up_to_the_limit_then_capped(mut app: TestApp) {
    // Task "five" has exactly as many calls as the limit, "three" fewer;
    // together they pass it.
    let calls = (0..8)
        .map(|i| {
            let mut c = call(
                &format!("c{i}"),
                &format!("1380013800{i}"),
                "2026-11-01T00:00:00Z",
            );
            c.task_id = if i < 5 { "five" } else { "three" }.into();
            c
        })
        .collect();
    app.upsert(calls).await;
    for (task, total, capped) in [("", 5, true), ("five", 5, false), ("three", 3, false)] {
        let page = app
            .calls
            .list_calls(ListCallsRequest {
                filter: Some(CallFilter {
                    task_ids: if task.is_empty() {
                        vec![]
                    } else {
                        vec![task.into()]
                    },
                    ..Default::default()
                }),
                page_size: 2,
                include_total: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (page.total_size, page.total_size_capped),
            (total, capped),
            "task {task:?}"
        );
        assert_eq!(page.calls.len(), 2, "the page itself is not capped");
    }
    // Without include_total nothing is counted or flagged.
    let page = app
        .calls
        .list_calls(ListCallsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!((page.total_size, page.total_size_capped), (0, false));
}

/// 2,500 numbers (three chunks of the upsert), 300 of them given a second
/// time later in the same upload with a new name for some and blanks for
/// others: each number is stored once, the later non-empty values win, and
/// the counts are those of writing the entries one by one.
async fn uploads_fold_repeated_numbers_across_chunks(app: TestApp) {
    let number = |i: usize| format!("+8613{i:09}");
    let mut numbers: Vec<TaskNumberInput> = (0..2500)
        .map(|i| TaskNumberInput {
            phone: number(i),
            name: format!("first {i}"),
            attributes: [("row".to_owned(), i.to_string())].into(),
        })
        .collect();
    // Model: phone -> (name, attributes) after applying entries in order.
    let mut model: BTreeMap<String, (String, BTreeMap<String, String>)> = numbers
        .iter()
        .map(|n| {
            (
                n.phone.clone(),
                (n.name.clone(), n.attributes.clone().into_iter().collect()),
            )
        })
        .collect();
    for i in (0..2500)
        .step_by(25)
        .chain((1..2500).step_by(25))
        .chain((2..2500).step_by(25))
    {
        let again = if i % 2 == 0 {
            TaskNumberInput {
                phone: number(i),
                name: format!("second {i}"),
                attributes: [("again".to_owned(), "yes".to_owned())].into(),
            }
        } else {
            // Blanks keep what the number had.
            TaskNumberInput {
                phone: number(i),
                ..Default::default()
            }
        };
        if !again.name.is_empty() {
            let slot = model.get_mut(&again.phone).unwrap();
            slot.0 = again.name.clone();
            slot.1 = again.attributes.clone().into_iter().collect();
        }
        numbers.push(again);
    }
    assert_eq!(numbers.len(), 2800);
    let upload = |numbers: Vec<TaskNumberInput>| async {
        app.ingest
            .clone()
            .upsert_task_numbers(UpsertTaskNumbersRequest {
                task_id: "big".into(),
                numbers,
            })
            .await
            .unwrap()
            .into_inner()
    };
    let first = upload(numbers.clone()).await;
    assert_eq!((first.inserted, first.updated), (2500, 300));

    let mut listed = BTreeMap::new();
    let mut req = ListTaskNumbersRequest {
        task_id: "big".into(),
        page_size: 1000,
        ..Default::default()
    };
    loop {
        let page = app
            .calls
            .clone()
            .list_task_numbers(req.clone())
            .await
            .unwrap()
            .into_inner();
        for n in page.numbers {
            let attributes: BTreeMap<String, String> = n.attributes.into_iter().collect();
            assert!(
                listed
                    .insert(n.phone.clone(), (n.name, attributes))
                    .is_none(),
                "{} listed twice",
                n.phone
            );
        }
        if page.next_page_token.is_empty() {
            break;
        }
        req.page_token = page.next_page_token;
    }
    assert_eq!(listed, model);

    // The same upload again only updates.
    let again = upload(numbers).await;
    assert_eq!((again.inserted, again.updated), (0, 2800));
}
