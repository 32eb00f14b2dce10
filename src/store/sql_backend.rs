//! The SQL both backends share, written once. [`sql_backend!`] expands it for
//! one backend: its store type, database, row type, the statement that opens a
//! write transaction, and the function that writes its placeholders (`?` for
//! SQLite, `$1…` for PostgreSQL). Statements built with `QueryBuilder` get the
//! right placeholders by themselves.

/// Expands the shared store code in the calling module, which imports what it
/// names (see `sqlite.rs`).
macro_rules! sql_backend {
    (store = $store:ident, db = $db:ty, row = $row:ty, begin = $begin:expr, sql = $sql:path) => {
        /// The columns of `calls` written from a [`Call`], in bind order.
        const CALL_COLUMNS: &[&str] = &[
            "source",
            "external_id",
            "task_id",
            "parent_task_id",
            "script_id",
            "callee",
            "callee_raw",
            "caller",
            "caller_raw",
            "submit_time",
            "call_time",
            "ring_time",
            "answer_time",
            "hangup_time",
            "ring_ms",
            "talk_ms",
            "total_ms",
            "billed_ms",
            "outcome",
            "vendor_status",
            "hangup_cause",
            "sip_code",
            "hangup_by",
            "score",
            "intent_level_id",
            "rounds",
            "recording_url",
            "gender",
            "province",
            "city",
            "area_code",
            "carrier",
            "region",
            "post_code",
            "rate",
            "base_cost",
            "cost",
            "currency",
            "settle_rate",
            "settle_cost",
            "quote_exchange",
            "bill_period",
            "dtmf",
            "recall_count",
            "recall_of",
            "customer_name",
            "line_id",
            "attributes",
            "update_time",
        ];

        impl $store {
            pub async fn upsert_calls(
                &self,
                tenant: &str,
                calls: &[Call],
                now: UnixMs,
            ) -> Result<Vec<UpsertResult>, StoreError> {
                let mut tx = self.writer.begin_with($begin).await?;
                let batch: Vec<(&Call, WriteMode)> =
                    calls.iter().map(|c| (c, WriteMode::Replace)).collect();
                let results = write_calls(&mut tx, tenant, &batch, now).await?;
                tx.commit().await?;
                self.after_write().await;
                Ok(results)
            }

            /// Stores what a request of vendor records yielded, in one transaction:
            /// the calls, the calls known only from a dialing list's history (stored
            /// only when the call is not there yet, so they never overwrite a full
            /// record), the tasks, and the quarantined records.
            pub async fn ingest(
                &self,
                tenant: &str,
                batch: &IngestBatch,
                now: UnixMs,
            ) -> Result<IngestResults, StoreError> {
                // The quarantine commits on its own first: a record that was
                // refused is kept even if storing the good ones fails.
                if !batch.rejected.is_empty() {
                    let mut tx = self.writer.begin_with($begin).await?;
                    for record in &batch.rejected {
                        insert_rejected(&mut tx, tenant, record).await?;
                    }
                    tx.commit().await?;
                }
                let mut tx = self.writer.begin_with($begin).await?;
                let mut results = IngestResults::default();
                for task in &batch.tasks {
                    upsert_task(&mut tx, tenant, task).await?;
                }
                let calls: Vec<(&Call, WriteMode)> = batch
                    .calls
                    .iter()
                    .map(|c| (c, WriteMode::KeepMissingParts))
                    .chain(batch.history_calls.iter().map(|c| (c, WriteMode::InsertOnly)))
                    .collect();
                let mut written = write_calls(&mut tx, tenant, &calls, now).await?;
                results.history_calls = written.split_off(batch.calls.len());
                results.calls = written;
                for (task_id, entries) in &batch.numbers {
                    Self::write_task_numbers(&mut tx, tenant, task_id, entries, now).await?;
                }
                tx.commit().await?;
                self.after_write().await;
                Ok(results)
            }

            /// Quarantined records, newest first.
            pub async fn list_rejected(
                &self,
                tenant: &str,
                source: Option<Source>,
                page_size: u32,
                after: Option<&Cursor>,
            ) -> Result<(Vec<RejectedRecord>, Option<Cursor>), StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT record_id, source, channel, reason, payload, payload_size, receive_time \
                     FROM rejected_records WHERE tenant_id = ",
                );
                qb.push_bind(tenant.to_owned());
                if let Some(source) = source {
                    qb.push(" AND source = ")
                        .push_bind(i64::from(source.code()));
                }
                if let Some(cursor) = after {
                    qb.push(" AND (receive_time, record_id) < (")
                        .push_bind(cursor.sort_key)
                        .push(", ")
                        .push_bind(cursor.call_id.clone())
                        .push(")");
                }
                qb.push(" ORDER BY receive_time DESC, record_id DESC LIMIT ")
                    .push_bind(i64::from(page_size) + 1);
                let mut records = Vec::new();
                for row in qb.build().fetch_all(&self.reader).await? {
                    let source: Option<i64> = row.try_get("source")?;
                    records.push(RejectedRecord {
                        id: row.try_get("record_id")?,
                        source: source
                            .and_then(|s| i32::try_from(s).ok())
                            .and_then(Source::from_code),
                        channel: row.try_get("channel")?,
                        reason: row.try_get("reason")?,
                        payload: row.try_get("payload")?,
                        payload_size: row.try_get("payload_size")?,
                        receive_time: row.try_get("receive_time")?,
                    });
                }
                let next = if records.len() > page_size as usize {
                    records.truncate(page_size as usize);
                    records.last().map(|r| Cursor {
                        sort_key: r.receive_time,
                        call_id: r.id.clone(),
                    })
                } else {
                    None
                };
                Ok((records, next))
            }

            pub async fn list_calls(
                &self,
                tenant: &str,
                query: &CallQuery,
            ) -> Result<CallPage, StoreError> {
                let mut qb = select_calls();
                push_where(&mut qb, tenant, &query.filter);
                push_page(
                    &mut qb,
                    query.order,
                    query.after.as_ref(),
                    i64::from(query.page_size) + 1,
                );
                let rows = qb.build().fetch_all(&self.reader).await?;
                let mut calls = rows
                    .iter()
                    .map(row_to_call)
                    .collect::<Result<Vec<_>, _>>()?;
                let next = if calls.len() > query.page_size as usize {
                    calls.truncate(query.page_size as usize);
                    calls.last().map(|last| Cursor {
                        sort_key: sort_key(query.order, last),
                        call_id: last.call_id.clone(),
                    })
                } else {
                    None
                };
                self.attach_tags(tenant, &mut calls).await?;
                let total = if query.include_total {
                    let mut count = QueryBuilder::<$db>::new("SELECT COUNT(*) FROM calls c");
                    push_where(&mut count, tenant, &query.filter);
                    Some(
                        count
                            .build_query_scalar::<i64>()
                            .fetch_one(&self.reader)
                            .await?,
                    )
                } else {
                    None
                };
                Ok(CallPage { calls, next, total })
            }

            pub async fn get_call(
                &self,
                tenant: &str,
                call_id: &str,
                include_progress_turns: bool,
            ) -> Result<Option<StoredCall>, StoreError> {
                let mut qb = select_calls();
                qb.push(" WHERE c.tenant_id = ")
                    .push_bind(tenant.to_owned())
                    .push(" AND c.call_id = ")
                    .push_bind(call_id.to_owned());
                let Some(row) = qb.build().fetch_optional(&self.reader).await? else {
                    return Ok(None);
                };
                let mut calls = vec![row_to_call(&row)?];
                self.attach_tags(tenant, &mut calls).await?;
                let mut call = calls.remove(0);
                let mut turns = QueryBuilder::<$db>::new(
                    "SELECT sequence, kind, customer_text, robot_text, node_id, node_name, keyword, score, \
                     speak_ms, play_ms, asr_latency_ms, tags, turn_time, after_transfer, turn_id, attributes \
                     FROM dialogue_turns WHERE tenant_id = ",
                );
                turns
                    .push_bind(tenant.to_owned())
                    .push(" AND call_id = ")
                    .push_bind(call_id.to_owned());
                if !include_progress_turns {
                    turns
                        .push(" AND kind <> ")
                        .push_bind(i64::from(TurnKind::Progress.code()));
                }
                turns.push(" ORDER BY sequence");
                for row in turns.build().fetch_all(&self.reader).await? {
                    call.call.turns.push(row_to_turn(&row)?);
                }
                Ok(Some(call))
            }

            pub async fn upsert_tasks(&self, tenant: &str, tasks: &[Task]) -> Result<(), StoreError> {
                let mut tx = self.writer.begin_with($begin).await?;
                for task in tasks {
                    upsert_task(&mut tx, tenant, task).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            pub async fn upsert_tags(
                &self,
                tenant: &str,
                tags: &[Tag],
                groups: &[TagGroup],
            ) -> Result<(), StoreError> {
                let mut catalog = Catalog::default();
                groups.iter().for_each(|g| catalog.add_group(g));
                tags.iter().for_each(|t| catalog.add_tag(t));
                let mut tx = self.writer.begin_with($begin).await?;
                catalog.write(&mut tx, tenant).await?;
                tx.commit().await?;
                Ok(())
            }

            pub async fn upsert_intent_levels(
                &self,
                tenant: &str,
                levels: &[IntentLevel],
            ) -> Result<(), StoreError> {
                let mut catalog = Catalog::default();
                levels.iter().for_each(|l| catalog.add_level(l));
                let mut tx = self.writer.begin_with($begin).await?;
                catalog.write(&mut tx, tenant).await?;
                tx.commit().await?;
                Ok(())
            }

            /// Fills the tags (with their groups) and hit tag groups of a page of calls
            /// in two queries, whatever the page size.
            pub(crate) async fn attach_tags(&self, tenant: &str, calls: &mut [StoredCall]) -> Result<(), StoreError> {
                if calls.is_empty() {
                    return Ok(());
                }
                let ids: Vec<String> = calls.iter().map(|c| c.call_id.clone()).collect();

                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT ct.call_id, ct.tag_id, t.name, t.color, t.description, \
                     g.group_id, g.name AS group_name, g.scene_id \
                     FROM call_tags ct \
                     LEFT JOIN tags t ON t.tenant_id = ct.tenant_id AND t.tag_id = ct.tag_id \
                     LEFT JOIN tag_group_members m ON m.tenant_id = ct.tenant_id AND m.tag_id = ct.tag_id \
                     LEFT JOIN tag_groups g ON g.tenant_id = m.tenant_id AND g.group_id = m.group_id \
                     WHERE ct.tenant_id = ",
                );
                qb.push_bind(tenant.to_owned()).push(" AND ct.call_id IN (");
                push_list(&mut qb, &ids);
                qb.push(") ORDER BY ct.call_id, ct.position, g.group_id");
                let mut tags: HashMap<String, Vec<Tag>> = HashMap::new();
                for row in qb.build().fetch_all(&self.reader).await? {
                    let call_id: String = row.try_get("call_id")?;
                    let tag_id: String = row.try_get("tag_id")?;
                    let list = tags.entry(call_id).or_default();
                    if list.last().is_none_or(|t| t.id != tag_id) {
                        list.push(Tag {
                            id: tag_id,
                            name: opt_text(&row, "name")?,
                            color: opt_text(&row, "color")?,
                            description: opt_text(&row, "description")?,
                            groups: Vec::new(),
                        });
                    }
                    if let Some(group_id) = row.try_get::<Option<String>, _>("group_id")?
                        && let Some(tag) = list.last_mut()
                    {
                        tag.groups.push(TagGroup {
                            id: group_id,
                            name: opt_text(&row, "group_name")?,
                            scene_id: opt_text(&row, "scene_id")?,
                        });
                    }
                }

                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT cg.call_id, cg.group_id, g.name, g.scene_id FROM call_tag_groups cg \
                     LEFT JOIN tag_groups g ON g.tenant_id = cg.tenant_id AND g.group_id = cg.group_id \
                     WHERE cg.tenant_id = ",
                );
                qb.push_bind(tenant.to_owned()).push(" AND cg.call_id IN (");
                push_list(&mut qb, &ids);
                qb.push(") ORDER BY cg.call_id, cg.group_id");
                let mut groups: HashMap<String, Vec<TagGroup>> = HashMap::new();
                for row in qb.build().fetch_all(&self.reader).await? {
                    groups
                        .entry(row.try_get("call_id")?)
                        .or_default()
                        .push(TagGroup {
                            id: row.try_get("group_id")?,
                            name: opt_text(&row, "name")?,
                            scene_id: opt_text(&row, "scene_id")?,
                        });
                }

                for call in calls.iter_mut() {
                    call.call.tags = tags.remove(&call.call_id).unwrap_or_default();
                    call.call.tag_groups = groups.remove(&call.call_id).unwrap_or_default();
                }
                Ok(())
            }
        }

        /// Rows per multi-row statement: well below the bound-parameter limits of
        /// SQLite (32,766) and PostgreSQL (65,535) at ~55 parameters a call.
        const ROWS_PER_STATEMENT: usize = 200;

        /// What an existing record looks like, to decide whether a new version wins.
        struct Existing {
            call_id: String,
            update_time: Option<UnixMs>,
            content_hash: String,
        }

        /// A call that will be written, with the id and outcome decided for it.
        struct PlannedWrite {
            index: usize,
            call_id: String,
            outcome: UpsertOutcome,
            hash: String,
        }

        type CallKey = (i32, String);

        fn call_key(call: &Call) -> CallKey {
            (call.source.code(), call.external_id.clone())
        }

        /// Writes a batch of calls with a constant number of statements per ~200
        /// calls (look-up, upsert, child rows, catalogs), not per call. A key that
        /// appears twice in one batch is applied in order, one round per repetition.
        async fn write_calls(
            tx: &mut Transaction<'static, $db>,
            tenant: &str,
            calls: &[(&Call, WriteMode)],
            now: UnixMs,
        ) -> Result<Vec<UpsertResult>, StoreError> {
            let mut results: Vec<Option<UpsertResult>> = vec![None; calls.len()];
            let mut pending: Vec<usize> = (0..calls.len()).collect();
            while !pending.is_empty() {
                let mut seen = std::collections::HashSet::new();
                let (round, later): (Vec<usize>, Vec<usize>) =
                    pending.iter().partition(|&&i| seen.insert(call_key(calls[i].0)));
                write_round(tx, tenant, calls, &round, now, &mut results).await?;
                pending = later;
            }
            results
                .into_iter()
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| StoreError::Corrupt("a call of the batch got no result".into()))
        }

        async fn write_round(
            tx: &mut Transaction<'static, $db>,
            tenant: &str,
            calls: &[(&Call, WriteMode)],
            round: &[usize],
            now: UnixMs,
            results: &mut [Option<UpsertResult>],
        ) -> Result<(), StoreError> {
            let mut existing: HashMap<CallKey, Existing> = HashMap::new();
            // One look-up per source and chunk: `source = ? AND external_id IN
            // (…)` walks the unique key, where a row-value IN list would make
            // SQLite scan every call of the tenant.
            let mut by_source: std::collections::BTreeMap<i32, Vec<&str>> = Default::default();
            for &i in round {
                let call = calls[i].0;
                by_source
                    .entry(call.source.code())
                    .or_default()
                    .push(call.external_id.as_str());
            }
            for (source, ids) in by_source {
                for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "SELECT source, external_id, call_id, update_time, content_hash FROM calls WHERE tenant_id = ",
                    );
                    qb.push_bind(tenant.to_owned())
                        .push(" AND source = ")
                        .push_bind(i64::from(source))
                        .push(" AND external_id IN (");
                    let mut list = qb.separated(", ");
                    for id in chunk {
                        list.push_bind((*id).to_owned());
                    }
                    qb.push(")");
                    for row in qb.build().fetch_all(&mut **tx).await? {
                        existing.insert(
                            (source, row.try_get("external_id")?),
                            Existing {
                                call_id: row.try_get("call_id")?,
                                update_time: row.try_get("update_time")?,
                                content_hash: row.try_get("content_hash")?,
                            },
                        );
                    }
                }
            }

            let mut writes = Vec::new();
            for &index in round {
                let (call, mode) = calls[index];
                let hash = call.content_hash();
                match existing.get(&call_key(call)) {
                    None => writes.push(PlannedWrite {
                        index,
                        call_id: uuid::Uuid::now_v7().to_string(),
                        outcome: UpsertOutcome::Inserted,
                        hash,
                    }),
                    Some(old) => {
                        // The vendor's update time decides; equal (or unknown) times
                        // fall back to arrival order, so the later arrival wins.
                        let older = matches!((call.update_time, old.update_time), (Some(new), Some(cur)) if new < cur);
                        if mode == WriteMode::InsertOnly || older || old.content_hash == hash {
                            results[index] = Some(UpsertResult {
                                call_id: old.call_id.clone(),
                                outcome: UpsertOutcome::Unchanged,
                            });
                        } else {
                            writes.push(PlannedWrite {
                                index,
                                call_id: old.call_id.clone(),
                                outcome: UpsertOutcome::Updated,
                                hash,
                            });
                        }
                    }
                }
            }

            let mut written: HashMap<CallKey, String> = HashMap::new();
            // Insert-only rows (a dialing list's history) never update: with a
            // concurrent writer they must not replace the full record.
            let (insert_only, upserts): (Vec<&PlannedWrite>, Vec<&PlannedWrite>) = writes
                .iter()
                .partition(|w| calls[w.index].1 == WriteMode::InsertOnly);
            let mut chunks: Vec<(&[&PlannedWrite], bool)> = Vec::new();
            for chunk in upserts.chunks(ROWS_PER_STATEMENT) {
                chunks.push((chunk, false));
            }
            for chunk in insert_only.chunks(ROWS_PER_STATEMENT) {
                chunks.push((chunk, true));
            }
            for (chunk, insert_only) in chunks {
                let mut qb = QueryBuilder::<$db>::new(
                    "INSERT INTO calls (tenant_id, call_id, sync_time, content_hash",
                );
                for column in CALL_COLUMNS {
                    qb.push(", ").push(column);
                }
                qb.push(") VALUES ");
                for (n, w) in chunk.iter().enumerate() {
                    qb.push(if n == 0 { "(" } else { ", (" })
                        .push_bind(tenant.to_owned())
                        .push(", ")
                        .push_bind(w.call_id.clone())
                        .push(", ")
                        .push_bind(now)
                        .push(", ")
                        .push_bind(w.hash.clone());
                    bind_call_values(&mut qb, calls[w.index].0)?;
                    qb.push(")");
                }
                if insert_only {
                    qb.push(
                        " ON CONFLICT (tenant_id, source, external_id) DO NOTHING \
                         RETURNING source, external_id, call_id",
                    );
                } else {
                qb.push(" ON CONFLICT (tenant_id, source, external_id) DO UPDATE SET sync_time = excluded.sync_time, content_hash = excluded.content_hash");
                for column in CALL_COLUMNS {
                    if *column == "update_time" {
                        // A version without an update time keeps the known
                        // one, so a late older version still loses to it.
                        qb.push(", update_time = COALESCE(excluded.update_time, calls.update_time)");
                    } else {
                        qb.push(format_args!(", {column} = excluded.{column}"));
                    }
                }
                // The database itself keeps an older version from replacing a newer
                // one, so concurrent writers (PostgreSQL) cannot race past the
                // decision above.
                qb.push(
                    " WHERE calls.update_time IS NULL OR excluded.update_time IS NULL \
                     OR excluded.update_time >= calls.update_time \
                     RETURNING source, external_id, call_id",
                );
                }
                for row in qb.build().fetch_all(&mut **tx).await? {
                    let source: i64 = row.try_get("source")?;
                    written.insert((source as i32, row.try_get("external_id")?), row.try_get("call_id")?);
                }
            }

            let mut stored: Vec<(usize, String, UpsertOutcome)> = Vec::with_capacity(writes.len());
            for w in writes {
                let call = calls[w.index].0;
                match written.remove(&call_key(call)) {
                    // A newer version was committed meanwhile: ours is stale.
                    None => {
                        let call_id: String = sqlx::query_scalar($sql(
                            "SELECT call_id FROM calls WHERE tenant_id = ? AND source = ? AND external_id = ?",
                        ))
                        .bind(tenant)
                        .bind(i64::from(call.source.code()))
                        .bind(&call.external_id)
                        .fetch_one(&mut **tx)
                        .await?;
                        results[w.index] = Some(UpsertResult {
                            call_id,
                            outcome: UpsertOutcome::Unchanged,
                        });
                    }
                    Some(call_id) => {
                        // Inserted by a concurrent writer after our look-up: an update.
                        let outcome = if call_id == w.call_id { w.outcome } else { UpsertOutcome::Updated };
                        stored.push((w.index, call_id, outcome));
                    }
                }
            }

            // A new version replaces the child rows it carries. A partial view of a
            // record (a list row without turns, a brief record without tags) keeps
            // the parts it does not carry.
            let mut clear_tags = Vec::new();
            let mut clear_turns = Vec::new();
            for (index, call_id, outcome) in &stored {
                let (call, mode) = calls[*index];
                if *outcome != UpsertOutcome::Updated {
                    continue;
                }
                let keep = mode == WriteMode::KeepMissingParts;
                if !keep || !call.tags.is_empty() || !call.tag_groups.is_empty() {
                    clear_tags.push(call_id.clone());
                }
                if !keep || !call.turns.is_empty() {
                    clear_turns.push(call_id.clone());
                }
            }
            for (table, ids) in [
                ("call_tags", &clear_tags),
                ("call_tag_groups", &clear_tags),
                ("dialogue_turns", &clear_turns),
            ] {
                for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                    let mut qb = QueryBuilder::<$db>::new(format!("DELETE FROM {table} WHERE tenant_id = "));
                    qb.push_bind(tenant.to_owned()).push(" AND call_id IN (");
                    push_list(&mut qb, chunk);
                    qb.push(")");
                    qb.build().execute(&mut **tx).await?;
                }
            }

            // Tags a partial view kept follow their call's (possibly new) task.
            let kept_tags: Vec<String> = stored
                .iter()
                .filter(|(_, id, outcome)| *outcome == UpsertOutcome::Updated && !clear_tags.contains(id))
                .map(|(_, id, _)| id.clone())
                .collect();
            for chunk in kept_tags.chunks(ROWS_PER_STATEMENT) {
                let mut qb = QueryBuilder::<$db>::new(
                    "UPDATE call_tags SET task_id = (SELECT c.task_id FROM calls c \
                     WHERE c.tenant_id = call_tags.tenant_id AND c.call_id = call_tags.call_id) \
                     WHERE tenant_id = ",
                );
                qb.push_bind(tenant.to_owned()).push(" AND call_id IN (");
                push_list(&mut qb, chunk);
                qb.push(")");
                qb.build().execute(&mut **tx).await?;
            }

            let written_calls: Vec<(&str, &Call)> = stored
                .iter()
                .map(|(index, call_id, _)| (call_id.as_str(), calls[*index].0))
                .collect();
            write_children(tx, tenant, &written_calls).await?;
            for (index, call_id, outcome) in stored {
                results[index] = Some(UpsertResult { call_id, outcome });
            }
            Ok(())
        }

        /// Binds the values of [`CALL_COLUMNS`], each preceded by `, `.
        fn bind_call_values(qb: &mut QueryBuilder<$db>, c: &Call) -> Result<(), StoreError> {
            let attributes =
                serde_json::to_string(&c.attributes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let text = |qb: &mut QueryBuilder<$db>, v: &str| {
                qb.push(", ").push_bind(v.to_owned());
            };
            let int = |qb: &mut QueryBuilder<$db>, v: i64| {
                qb.push(", ").push_bind(v);
            };
            let opt = |qb: &mut QueryBuilder<$db>, v: Option<i64>| {
                qb.push(", ").push_bind(v);
            };
            int(qb, c.source.code().into());
            text(qb, &c.external_id);
            text(qb, &c.task_id);
            text(qb, &c.parent_task_id);
            text(qb, &c.script_id);
            text(qb, &c.callee);
            text(qb, &c.callee_raw);
            text(qb, &c.caller);
            text(qb, &c.caller_raw);
            opt(qb, c.submit_time);
            int(qb, c.call_time);
            opt(qb, c.ring_time);
            opt(qb, c.answer_time);
            opt(qb, c.hangup_time);
            int(qb, c.ring_ms);
            int(qb, c.talk_ms);
            int(qb, c.total_ms);
            int(qb, c.billed_ms);
            int(qb, c.outcome.code().into());
            text(qb, &c.vendor_status);
            text(qb, &c.hangup_cause);
            text(qb, &c.sip_code);
            int(qb, c.hangup_by.code().into());
            opt(qb, c.score.map(i64::from));
            qb.push(", ")
                .push_bind(c.intent_level.as_ref().map(|l| l.id.clone()));
            int(qb, c.rounds.into());
            text(qb, &c.recording_url);
            int(qb, c.gender.code().into());
            let l = &c.location;
            for v in [
                &l.province,
                &l.city,
                &l.area_code,
                &l.carrier,
                &l.region,
                &l.post_code,
            ] {
                text(qb, v);
            }
            let b = &c.billing;
            for v in [
                &b.rate,
                &b.base_cost,
                &b.cost,
                &b.currency,
                &b.settle_rate,
                &b.settle_cost,
                &b.quote_exchange,
                &b.bill_period,
            ] {
                text(qb, v);
            }
            text(qb, &c.dtmf);
            int(qb, c.recall_count.into());
            text(qb, &c.recall_of);
            text(qb, &c.customer_name);
            text(qb, &c.line_id);
            text(qb, &attributes);
            opt(qb, c.update_time);
            Ok(())
        }

        /// Writes the child rows of freshly written calls (tags, hit tag groups,
        /// turns) and fills the catalogs with the tags, groups, intent levels and
        /// tasks they name, in multi-row statements.
        async fn write_children(
            tx: &mut Transaction<'static, $db>,
            tenant: &str,
            calls: &[(&str, &Call)],
        ) -> Result<(), StoreError> {
            let mut tag_rows: Vec<(&str, &str, &str, i64)> = Vec::new();
            let mut group_rows: Vec<(&str, &str)> = Vec::new();
            let mut turn_rows: Vec<(&str, &DialogueTurn)> = Vec::new();
            let mut catalog = Catalog::default();
            for &(call_id, call) in calls {
                let mut seen_tags = std::collections::HashSet::new();
                let mut seen_groups = std::collections::HashSet::new();
                for (position, tag) in call.tags.iter().enumerate() {
                    if seen_tags.insert(tag.id.as_str()) {
                        tag_rows.push((call_id, &tag.id, &call.task_id, position as i64));
                    }
                    for group in &tag.groups {
                        if seen_groups.insert(group.id.as_str()) {
                            group_rows.push((call_id, &group.id));
                        }
                    }
                    catalog.add_tag(tag);
                }
                for group in &call.tag_groups {
                    if seen_groups.insert(group.id.as_str()) {
                        group_rows.push((call_id, &group.id));
                    }
                    catalog.add_group(group);
                }
                for turn in &call.turns {
                    turn_rows.push((call_id, turn));
                    for tag in &turn.tags {
                        catalog.add_tag(tag);
                    }
                }
                if let Some(level) = &call.intent_level {
                    catalog.add_level(level);
                }
                if !call.task_id.is_empty() {
                    catalog.tasks.entry(call.task_id.clone()).or_insert_with(|| Task {
                        task_id: call.task_id.clone(),
                        parent_task_id: call.parent_task_id.clone(),
                        script_id: call.script_id.clone(),
                        source: Some(call.source),
                        ..Task::default()
                    });
                }
            }

            for chunk in tag_rows.chunks(ROWS_PER_STATEMENT) {
                let mut qb = QueryBuilder::<$db>::new("INSERT INTO call_tags (tenant_id, call_id, tag_id, task_id, position) ");
                qb.push_values(chunk, |mut row, (call_id, tag_id, task_id, position)| {
                    row.push_bind(tenant.to_owned())
                        .push_bind((*call_id).to_owned())
                        .push_bind((*tag_id).to_owned())
                        .push_bind((*task_id).to_owned())
                        .push_bind(*position);
                });
                qb.push(" ON CONFLICT DO NOTHING");
                qb.build().execute(&mut **tx).await?;
            }
            for chunk in group_rows.chunks(ROWS_PER_STATEMENT) {
                let mut qb = QueryBuilder::<$db>::new("INSERT INTO call_tag_groups (tenant_id, call_id, group_id) ");
                qb.push_values(chunk, |mut row, (call_id, group_id)| {
                    row.push_bind(tenant.to_owned())
                        .push_bind((*call_id).to_owned())
                        .push_bind((*group_id).to_owned());
                });
                qb.push(" ON CONFLICT DO NOTHING");
                qb.build().execute(&mut **tx).await?;
            }
            for chunk in turn_rows.chunks(ROWS_PER_STATEMENT / 2) {
                let mut encoded = Vec::with_capacity(chunk.len());
                for (call_id, turn) in chunk {
                    let tags = serde_json::to_string(&turn.tags).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    let attributes =
                        serde_json::to_string(&turn.attributes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    encoded.push((*call_id, *turn, tags, attributes));
                }
                let mut qb = QueryBuilder::<$db>::new(
                    "INSERT INTO dialogue_turns (tenant_id, call_id, sequence, kind, customer_text, \
                     robot_text, node_id, node_name, keyword, score, speak_ms, play_ms, asr_latency_ms, \
                     tags, turn_time, after_transfer, turn_id, attributes) ",
                );
                qb.push_values(encoded, |mut row, (call_id, turn, tags, attributes)| {
                    row.push_bind(tenant.to_owned())
                        .push_bind(call_id.to_owned())
                        .push_bind(i64::from(turn.sequence))
                        .push_bind(i64::from(turn.kind.code()))
                        .push_bind(turn.customer_text.clone())
                        .push_bind(turn.robot_text.clone())
                        .push_bind(turn.node_id.clone())
                        .push_bind(turn.node_name.clone())
                        .push_bind(turn.keyword.clone())
                        .push_bind(i64::from(turn.score))
                        .push_bind(turn.speak_ms)
                        .push_bind(turn.play_ms)
                        .push_bind(turn.asr_latency_ms)
                        .push_bind(tags)
                        .push_bind(turn.time)
                        .push_bind(turn.after_transfer)
                        .push_bind(turn.turn_id.clone())
                        .push_bind(attributes);
                });
                qb.build().execute(&mut **tx).await?;
            }
            catalog.write(tx, tenant).await
        }

        /// Catalog entries named by a batch, merged by id: a later non-empty field
        /// wins, an empty one never erases.
        #[derive(Default)]
        struct Catalog {
            tags: std::collections::BTreeMap<String, Tag>,
            groups: std::collections::BTreeMap<String, TagGroup>,
            members: std::collections::BTreeSet<(String, String)>,
            levels: std::collections::BTreeMap<String, IntentLevel>,
            tasks: std::collections::BTreeMap<String, Task>,
        }

        fn fill(into: &mut String, from: &str) {
            if !from.is_empty() {
                *into = from.to_owned();
            }
        }

        impl Catalog {
            fn add_tag(&mut self, tag: &Tag) {
                let entry = self.tags.entry(tag.id.clone()).or_insert_with(|| Tag {
                    id: tag.id.clone(),
                    ..Tag::default()
                });
                fill(&mut entry.name, &tag.name);
                fill(&mut entry.color, &tag.color);
                fill(&mut entry.description, &tag.description);
                for group in &tag.groups {
                    self.members.insert((tag.id.clone(), group.id.clone()));
                    self.add_group(group);
                }
            }

            fn add_group(&mut self, group: &TagGroup) {
                let entry = self.groups.entry(group.id.clone()).or_insert_with(|| TagGroup {
                    id: group.id.clone(),
                    ..TagGroup::default()
                });
                fill(&mut entry.name, &group.name);
                fill(&mut entry.scene_id, &group.scene_id);
            }

            fn add_level(&mut self, level: &IntentLevel) {
                let entry = self.levels.entry(level.id.clone()).or_insert_with(|| IntentLevel {
                    id: level.id.clone(),
                    ..IntentLevel::default()
                });
                fill(&mut entry.name, &level.name);
                fill(&mut entry.alias, &level.alias);
                fill(&mut entry.color, &level.color);
            }

            /// Upserts every entry; tasks seen only in calls are added, never changed.
            async fn write(self, tx: &mut Transaction<'static, $db>, tenant: &str) -> Result<(), StoreError> {
                let groups: Vec<TagGroup> = self.groups.into_values().collect();
                for chunk in groups.chunks(ROWS_PER_STATEMENT) {
                    let mut qb = QueryBuilder::<$db>::new("INSERT INTO tag_groups (tenant_id, group_id, name, scene_id) ");
                    qb.push_values(chunk, |mut row, g| {
                        row.push_bind(tenant.to_owned())
                            .push_bind(g.id.clone())
                            .push_bind(g.name.clone())
                            .push_bind(g.scene_id.clone());
                    });
                    qb.push(
                        " ON CONFLICT (tenant_id, group_id) DO UPDATE SET \
                         name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE tag_groups.name END, \
                         scene_id = CASE WHEN excluded.scene_id <> '' THEN excluded.scene_id ELSE tag_groups.scene_id END",
                    );
                    qb.build().execute(&mut **tx).await?;
                }
                let tags: Vec<Tag> = self.tags.into_values().collect();
                for chunk in tags.chunks(ROWS_PER_STATEMENT) {
                    let mut qb = QueryBuilder::<$db>::new("INSERT INTO tags (tenant_id, tag_id, name, color, description) ");
                    qb.push_values(chunk, |mut row, t| {
                        row.push_bind(tenant.to_owned())
                            .push_bind(t.id.clone())
                            .push_bind(t.name.clone())
                            .push_bind(t.color.clone())
                            .push_bind(t.description.clone());
                    });
                    qb.push(
                        " ON CONFLICT (tenant_id, tag_id) DO UPDATE SET \
                         name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE tags.name END, \
                         color = CASE WHEN excluded.color <> '' THEN excluded.color ELSE tags.color END, \
                         description = CASE WHEN excluded.description <> '' THEN excluded.description ELSE tags.description END",
                    );
                    qb.build().execute(&mut **tx).await?;
                }
                let members: Vec<(String, String)> = self.members.into_iter().collect();
                for chunk in members.chunks(ROWS_PER_STATEMENT) {
                    let mut qb = QueryBuilder::<$db>::new("INSERT INTO tag_group_members (tenant_id, tag_id, group_id) ");
                    qb.push_values(chunk, |mut row, (tag_id, group_id)| {
                        row.push_bind(tenant.to_owned())
                            .push_bind(tag_id.clone())
                            .push_bind(group_id.clone());
                    });
                    qb.push(" ON CONFLICT DO NOTHING");
                    qb.build().execute(&mut **tx).await?;
                }
                let levels: Vec<IntentLevel> = self.levels.into_values().collect();
                for chunk in levels.chunks(ROWS_PER_STATEMENT) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO intent_levels (tenant_id, intent_level_id, name, alias, color) ",
                    );
                    qb.push_values(chunk, |mut row, l| {
                        row.push_bind(tenant.to_owned())
                            .push_bind(l.id.clone())
                            .push_bind(l.name.clone())
                            .push_bind(l.alias.clone())
                            .push_bind(l.color.clone());
                    });
                    qb.push(
                        " ON CONFLICT (tenant_id, intent_level_id) DO UPDATE SET \
                         name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE intent_levels.name END, \
                         alias = CASE WHEN excluded.alias <> '' THEN excluded.alias ELSE intent_levels.alias END, \
                         color = CASE WHEN excluded.color <> '' THEN excluded.color ELSE intent_levels.color END",
                    );
                    qb.build().execute(&mut **tx).await?;
                }
                let tasks: Vec<Task> = self.tasks.into_values().collect();
                for chunk in tasks.chunks(ROWS_PER_STATEMENT) {
                    let mut qb = QueryBuilder::<$db>::new(
                        "INSERT INTO tasks (tenant_id, task_id, parent_task_id, script_id, source) ",
                    );
                    qb.push_values(chunk, |mut row, t| {
                        row.push_bind(tenant.to_owned())
                            .push_bind(t.task_id.clone())
                            .push_bind(t.parent_task_id.clone())
                            .push_bind(t.script_id.clone())
                            .push_bind(t.source.map(|s| i64::from(s.code())));
                    });
                    qb.push(" ON CONFLICT DO NOTHING");
                    qb.build().execute(&mut **tx).await?;
                }
                Ok(())
            }
        }

        async fn insert_rejected(
            tx: &mut Transaction<'static, $db>,
            tenant: &str,
            record: &RejectedRecord,
        ) -> Result<(), StoreError> {
            sqlx::query($sql("INSERT INTO rejected_records (tenant_id, record_id, source, channel, reason, payload, \
                 payload_size, receive_time) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"))
            .bind(tenant)
            .bind(&record.id)
            .bind(record.source.map(|s| i64::from(s.code())))
            .bind(&record.channel)
            .bind(&record.reason)
            .bind(&record.payload)
            .bind(record.payload_size)
            .bind(record.receive_time)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        async fn upsert_task(
            tx: &mut Transaction<'static, $db>,
            tenant: &str,
            task: &Task,
        ) -> Result<(), StoreError> {
            let attributes =
                serde_json::to_string(&task.attributes).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            sqlx::query($sql("INSERT INTO tasks (tenant_id, task_id, name, parent_task_id, script_id, source, \
                 create_time, update_time, attributes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (tenant_id, task_id) DO UPDATE SET \
                 name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE tasks.name END, \
                 parent_task_id = CASE WHEN excluded.parent_task_id <> '' THEN excluded.parent_task_id ELSE tasks.parent_task_id END, \
                 script_id = CASE WHEN excluded.script_id <> '' THEN excluded.script_id ELSE tasks.script_id END, \
                 source = COALESCE(excluded.source, tasks.source), \
                 create_time = COALESCE(excluded.create_time, tasks.create_time), \
                 update_time = COALESCE(excluded.update_time, tasks.update_time), \
                 attributes = CASE WHEN excluded.attributes <> '{}' THEN excluded.attributes ELSE tasks.attributes END"))
            .bind(tenant)
            .bind(&task.task_id)
            .bind(&task.name)
            .bind(&task.parent_task_id)
            .bind(&task.script_id)
            .bind(task.source.map(|s| i64::from(s.code())))
            .bind(task.create_time)
            .bind(task.update_time)
            .bind(attributes)
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        pub(crate) fn select_calls() -> QueryBuilder<$db> {
            QueryBuilder::new(super::filter_sql::SELECT_CALLS)
        }

        pub(crate) fn push_list(qb: &mut QueryBuilder<$db>, values: &[String]) {
            let mut list = qb.separated(", ");
            for value in values {
                list.push_bind(value.clone());
            }
        }

        fn sort_key(order: CallOrder, call: &StoredCall) -> i64 {
            match order {
                CallOrder::CallTimeDesc | CallOrder::CallTimeAsc => call.call.call_time,
                CallOrder::ScoreDesc | CallOrder::ScoreAsc => {
                    call.call.score.map_or(-2_147_483_649, i64::from)
                }
                CallOrder::TalkMsDesc | CallOrder::TalkMsAsc => call.call.talk_ms,
            }
        }

        pub(crate) fn opt_text(row: &$row, column: &str) -> Result<String, sqlx::Error> {
            Ok(row
                .try_get::<Option<String>, _>(column)?
                .unwrap_or_default())
        }

        pub(crate) fn code<T>(row: &$row, column: &str, from: fn(i32) -> Option<T>) -> Result<T, StoreError> {
            let value: i64 = row.try_get(column)?;
            i32::try_from(value)
                .ok()
                .and_then(from)
                .ok_or_else(|| StoreError::Corrupt(format!("{column} = {value}")))
        }

        pub(crate) fn json<T: serde::de::DeserializeOwned>(row: &$row, column: &str) -> Result<T, StoreError> {
            let text: String = row.try_get(column)?;
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
        }

        pub(crate) fn row_to_call(row: &$row) -> Result<StoredCall, StoreError> {
            let intent_level = row
                .try_get::<Option<String>, _>("intent_level_id")?
                .map(|id| -> Result<IntentLevel, sqlx::Error> {
                    Ok(IntentLevel {
                        id,
                        name: opt_text(row, "il_name")?,
                        alias: opt_text(row, "il_alias")?,
                        color: opt_text(row, "il_color")?,
                    })
                })
                .transpose()?;
            let attributes: BTreeMap<String, String> = json(row, "attributes")?;
            let call = Call {
                source: code(row, "source", Source::from_code)?,
                external_id: row.try_get("external_id")?,
                task_id: row.try_get("task_id")?,
                parent_task_id: row.try_get("parent_task_id")?,
                script_id: row.try_get("script_id")?,
                callee: row.try_get("callee")?,
                callee_raw: row.try_get("callee_raw")?,
                caller: row.try_get("caller")?,
                caller_raw: row.try_get("caller_raw")?,
                submit_time: row.try_get("submit_time")?,
                call_time: row.try_get("call_time")?,
                ring_time: row.try_get("ring_time")?,
                answer_time: row.try_get("answer_time")?,
                hangup_time: row.try_get("hangup_time")?,
                ring_ms: row.try_get("ring_ms")?,
                talk_ms: row.try_get("talk_ms")?,
                total_ms: row.try_get("total_ms")?,
                billed_ms: row.try_get("billed_ms")?,
                outcome: code(row, "outcome", CallOutcome::from_code)?,
                vendor_status: row.try_get("vendor_status")?,
                hangup_cause: row.try_get("hangup_cause")?,
                sip_code: row.try_get("sip_code")?,
                hangup_by: code(row, "hangup_by", Party::from_code)?,
                score: row
                    .try_get::<Option<i64>, _>("score")?
                    .and_then(|s| i32::try_from(s).ok()),
                intent_level,
                rounds: row.try_get::<i64, _>("rounds")? as i32,
                tags: Vec::new(),
                tag_groups: Vec::new(),
                recording_url: row.try_get("recording_url")?,
                gender: code(row, "gender", Gender::from_code)?,
                location: Location {
                    province: row.try_get("province")?,
                    city: row.try_get("city")?,
                    area_code: row.try_get("area_code")?,
                    carrier: row.try_get("carrier")?,
                    region: row.try_get("region")?,
                    post_code: row.try_get("post_code")?,
                },
                billing: Billing {
                    rate: row.try_get("rate")?,
                    base_cost: row.try_get("base_cost")?,
                    cost: row.try_get("cost")?,
                    currency: row.try_get("currency")?,
                    settle_rate: row.try_get("settle_rate")?,
                    settle_cost: row.try_get("settle_cost")?,
                    quote_exchange: row.try_get("quote_exchange")?,
                    bill_period: row.try_get("bill_period")?,
                },
                dtmf: row.try_get("dtmf")?,
                recall_count: row.try_get::<i64, _>("recall_count")? as i32,
                recall_of: row.try_get("recall_of")?,
                customer_name: row.try_get("customer_name")?,
                line_id: row.try_get("line_id")?,
                attributes,
                turns: Vec::new(),
                update_time: row.try_get("update_time")?,
            };
            Ok(StoredCall {
                call_id: row.try_get("call_id")?,
                sync_time: row.try_get("sync_time")?,
                call,
            })
        }

        fn row_to_turn(row: &$row) -> Result<DialogueTurn, StoreError> {
            Ok(DialogueTurn {
                sequence: row.try_get::<i64, _>("sequence")? as i32,
                kind: code(row, "kind", TurnKind::from_code)?,
                customer_text: row.try_get("customer_text")?,
                robot_text: row.try_get("robot_text")?,
                node_id: row.try_get("node_id")?,
                node_name: row.try_get("node_name")?,
                keyword: row.try_get("keyword")?,
                score: row.try_get::<i64, _>("score")? as i32,
                speak_ms: row.try_get("speak_ms")?,
                play_ms: row.try_get("play_ms")?,
                asr_latency_ms: row.try_get("asr_latency_ms")?,
                tags: json(row, "tags")?,
                time: row.try_get("turn_time")?,
                after_transfer: row.try_get("after_transfer")?,
                turn_id: row.try_get("turn_id")?,
                attributes: json(row, "attributes")?,
            })
        }

    };
}

pub(crate) use sql_backend;
