//! Sample values for unit tests.

use std::collections::BTreeMap;

use super::{
    Billing, Call, CallOutcome, DialogueTurn, Gender, IntentLevel, Location, Party, Source, Tag,
    TagGroup, TurnKind,
};

/// A valid call with every part filled, for tests.
pub fn sample_call() -> Call {
    let tag = Tag {
        id: "t1".into(),
        name: "interested".into(),
        color: "#ff0000".into(),
        description: "asked for a callback".into(),
        groups: vec![TagGroup {
            id: "g1".into(),
            name: "intent".into(),
            scene_id: "s1".into(),
        }],
    };
    Call {
        source: Source::Api,
        external_id: "ext-1".into(),
        task_id: "task-1".into(),
        parent_task_id: String::new(),
        script_id: "script-1".into(),
        callee: "+8618651683344".into(),
        callee_raw: "18651683344".into(),
        caller: String::new(),
        caller_raw: String::new(),
        submit_time: None,
        call_time: 1_700_000_000_000,
        ring_time: Some(1_700_000_001_000),
        answer_time: Some(1_700_000_005_000),
        hangup_time: Some(1_700_000_065_000),
        ring_ms: 4000,
        talk_ms: 60_000,
        total_ms: 65_000,
        billed_ms: 60_000,
        outcome: CallOutcome::Answered,
        vendor_status: "1".into(),
        hangup_cause: "NORMAL_CLEARING".into(),
        sip_code: "200".into(),
        hangup_by: Party::Customer,
        score: Some(165),
        intent_level: Some(IntentLevel {
            id: "C".into(),
            name: "C".into(),
            alias: String::new(),
            color: String::new(),
        }),
        rounds: 2,
        tags: vec![tag.clone()],
        tag_groups: Vec::new(),
        recording_url: "https://example.com/r/1.wav".into(),
        gender: Gender::Female,
        location: Location {
            province: "Jiangsu".into(),
            city: "Nanjing".into(),
            ..Default::default()
        },
        billing: Billing {
            cost: "0.12".into(),
            currency: "CNY".into(),
            ..Default::default()
        },
        dtmf: "1#".into(),
        recall_count: 0,
        recall_of: String::new(),
        customer_name: "Zhang".into(),
        line_id: String::new(),
        attributes: BTreeMap::from([("crm_id".to_owned(), "42".to_owned())]),
        turns: (1..=2)
            .map(|sequence| DialogueTurn {
                sequence,
                kind: TurnKind::CustomerUtterance,
                customer_text: "你好，我想了解一下".into(),
                robot_text: "您好".into(),
                node_id: "n1".into(),
                node_name: "opening".into(),
                keyword: String::new(),
                score: 50,
                speak_ms: 1200,
                play_ms: 800,
                asr_latency_ms: 300,
                tags: vec![tag.clone()],
                time: Some(1_700_000_010_000),
                after_transfer: false,
                turn_id: format!("turn-{sequence}"),
                attributes: BTreeMap::new(),
            })
            .collect(),
        update_time: Some(1_700_000_070_000),
        quality_flags: Vec::new(),
    }
}
