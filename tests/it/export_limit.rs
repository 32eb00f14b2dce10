//! ExportCalls on a server whose response limit cuts some of its 500-call
//! pages: a page too large for one message goes out in several, and the
//! next page, read ahead meanwhile, follows the last of them without a gap
//! or a repeat.

use prost::Message;

use crate::helpers::{TestApp, call};
use callscope::config::ServeConfig;
use callscope::proto::{self, CallFilter, ExportCallsRequest};

/// Room for 500 calls without turns, not for the pages whose calls carry
/// long turns.
const LIMIT: usize = 256 * 1024;

fn limited(config: &mut ServeConfig) {
    config.max_response_bytes = LIMIT;
}

async fn a_page_cut_short_is_followed_by_the_calls_after_it(mut app: TestApp) {
    // 1,400 calls at 700 distinct times (so ties are broken by call id),
    // those of the minutes 08:03 to 08:06 with a long turn, written in two
    // batches out of order.
    let mut written = Vec::new();
    for i in 0..1400 {
        let second = (i * 7919) % 700;
        let mut c = call(
            &format!("e{i}"),
            &format!("+8613800{i:06}"),
            &format!("2026-11-20T08:{:02}:{:02}Z", second / 60, second % 60),
        );
        c.task_id = "t1".into();
        if (180..420).contains(&second) {
            c.turns = vec![proto::DialogueTurn {
                sequence: 1,
                kind: proto::TurnKind::CustomerUtterance as i32,
                customer_text: format!("{i} {}", "words ".repeat(400)),
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
        if include_turns {
            assert!(messages > 3, "the pages with turns were cut: {messages}");
        } else {
            assert_eq!(messages, 3, "500 + 500 + 400 calls");
        }
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
        let with_turns = (0..1400)
            .filter(|i| (180..420).contains(&((i * 7919) % 700)))
            .count();
        assert_eq!(
            worded.len(),
            if include_turns { with_turns } else { 0 },
            "turns only when asked"
        );
    }
}

crate::backend_tests!(
    config: limited;
    a_page_cut_short_is_followed_by_the_calls_after_it,
);
