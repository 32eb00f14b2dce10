//! ExportCalls on a server whose response limit cuts its 500-call pages
//! short: the next page is read ahead while one is sent, so a page cut short
//! must be followed by the calls after its last one sent, not after the
//! uncut page.

use prost::Message;

use crate::helpers::{TestApp, call};
use callscope::config::ServeConfig;
use callscope::proto::{self, CallFilter, ExportCallsRequest};

/// Small enough that a page of 500 calls never fits one message.
const LIMIT: usize = 48 * 1024;

fn limited(config: &mut ServeConfig) {
    config.max_response_bytes = LIMIT;
}

async fn a_page_cut_short_is_followed_by_the_calls_after_it(mut app: TestApp) {
    // 1,400 calls at 700 distinct times (so ties are broken by call id),
    // every seventh with a long turn, in two batches out of order.
    let mut written = Vec::new();
    for i in 0..1400 {
        let second = (i * 7919) % 700;
        let mut c = call(
            &format!("e{i}"),
            &format!("+8613800{i:06}"),
            &format!("2026-11-20T08:{:02}:{:02}Z", second / 60, second % 60),
        );
        c.task_id = "t1".into();
        if i % 7 == 0 {
            c.turns = vec![proto::DialogueTurn {
                sequence: 1,
                kind: proto::TurnKind::CustomerUtterance as i32,
                customer_text: format!("{i} {}", "words ".repeat(100)),
                ..Default::default()
            }];
        }
        written.push(c);
    }
    let later = written.split_off(700);
    app.upsert(later).await;
    app.upsert(written).await;

    for include_turns in [false, true] {
        let mut stream = app
            .calls
            .clone()
            .export_calls(ExportCallsRequest {
                filter: Some(CallFilter {
                    task_ids: vec!["t1".into()],
                    ..Default::default()
                }),
                resume_token: String::new(),
                include_turns,
            })
            .await
            .expect("export")
            .into_inner();
        let mut keys = Vec::new();
        let mut messages = 0;
        while let Some(message) = stream.message().await.expect("message") {
            messages += 1;
            assert!(
                message.encoded_len() <= LIMIT,
                "a message of {} bytes (turns: {include_turns})",
                message.encoded_len()
            );
            for c in &message.calls {
                let worded = c.turns.iter().any(|t| !t.customer_text.is_empty());
                keys.push((
                    c.call_time.unwrap_or_default().seconds,
                    c.call_id.clone(),
                    c.external_id.clone(),
                    worded,
                ));
            }
        }
        assert!(messages > 1400 / 500 + 1, "pages were cut: {messages}");
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(
            keys, sorted,
            "call_time, then call_id (turns: {include_turns})"
        );
        let mut ids: Vec<String> = keys.iter().map(|k| k.2.clone()).collect();
        ids.sort();
        let mut want: Vec<String> = (0..1400).map(|i| format!("e{i}")).collect();
        want.sort();
        assert_eq!(ids, want, "every call once (turns: {include_turns})");
        let worded: Vec<&str> = keys.iter().filter(|k| k.3).map(|k| k.2.as_str()).collect();
        assert_eq!(
            worded.len(),
            if include_turns { 200 } else { 0 },
            "turns only when asked"
        );
    }
}

crate::backend_tests!(
    config: limited;
    a_page_cut_short_is_followed_by_the_calls_after_it,
);
