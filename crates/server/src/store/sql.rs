//! The SQL implementation of [`Store`](super::Store), shared by both backends.
//!
//! The schema uses only TEXT and BIGINT columns and `$N` placeholders, which SQLite and
//! PostgreSQL both understand, so one body of code serves both. It is a macro rather than
//! generic code because sqlx's generic-over-database bounds would drown the logic; each backend
//! module invokes `sql_store!(TheStore, TheDatabase)` after defining the struct with `pool`,
//! `key` and `write_lock` fields and a `lock_writes(&mut tx)` function for cross-process write
//! serialisation (PostgreSQL advisory lock; nothing for SQLite, which has one process), and a
//! `begin_write(&pool)` function that starts every write transaction (`BEGIN IMMEDIATE` on
//! SQLite, so a transaction never has to upgrade a read lock to a write lock).

macro_rules! sql_store {
    ($store:ident, $db:ty) => {
        use std::collections::BTreeSet;
        use std::str::FromStr;

        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use otaas_api::{
            AgentGroupId, AgentGroupSpec, EndpointId, EndpointSpec, ExporterBindingId,
            ExporterBindingSpec, PipelineId, PipelineSpec, TokenId, TokenScope,
        };
        use serde::Serialize;
        use serde::de::DeserializeOwned;
        use sqlx::Row;

        use $crate::auth::TokenKey;
        use $crate::store::{
            Backend, BindingRecord, EndpointRecord, GroupRecord, GroupRevision, Kind,
            PipelineRecord, Record, Store, StoreError, TokenRecord, Written,
        };

        type Conn = <$db as sqlx::Database>::Connection;
        type DbRow = <$db as sqlx::Database>::Row;

        const COLS: &str = "id, revision, body, secrets, created_at, updated_at";
        const GROUP_COLS: &str =
            "id, revision, body, created_at, updated_at, config_revision, config_hash";
        const TOKEN_COLS: &str =
            "id, scope, hash, description, created_at, expires_at, revoked_at";

        fn now_ms() -> i64 {
            Utc::now().timestamp_millis()
        }

        fn ts(ms: i64) -> Result<DateTime<Utc>, StoreError> {
            DateTime::from_timestamp_millis(ms)
                .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} out of range")))
        }

        fn encode<T: Serialize>(v: &T) -> String {
            serde_json::to_string(v).expect("specs always serialise")
        }

        /// A spec as its `body` and `secrets` columns (see `store::split_secrets`), the latter
        /// sealed with the server key unless there is nothing in it.
        fn encode_split<T: Serialize>(key: &TokenKey, v: &T) -> (String, String) {
            let value = serde_json::to_value(v).expect("specs always serialise");
            let (body, secrets) = $crate::store::split_secrets(value);
            let secrets = if secrets.as_object().is_some_and(|m| m.is_empty()) {
                encode(&secrets)
            } else {
                key.seal(&encode(&secrets))
            };
            (encode(&body), secrets)
        }

        /// `key` opens the sealed `secrets` column (group rows have none: `None`).
        fn record_from_row<I, S>(row: &DbRow, key: Option<&TokenKey>) -> Result<Record<I, S>, StoreError>
        where
            I: FromStr,
            S: DeserializeOwned,
        {
            let id: String = row.try_get("id")?;
            let body: String = row.try_get("body")?;
            // Group rows have no `secrets` column.
            let secrets: Option<String> = row.try_get("secrets").ok();
            let mut body: serde_json::Value = serde_json::from_str(&body)
                .map_err(|e| StoreError::Corrupt(format!("body of {id}: {e}")))?;
            if let (Some(s), Some(key)) = (secrets, key) {
                // '{}' (nothing to keep) is stored as is; anything else sealed.
                let s = if s.starts_with('{') {
                    s
                } else {
                    key.open(&s).ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "secrets of {id} do not open with the server key"
                        ))
                    })?
                };
                let s: serde_json::Value = serde_json::from_str(&s)
                    .map_err(|e| StoreError::Corrupt(format!("secrets of {id}: {e}")))?;
                $crate::store::join_secrets(&mut body, s);
            }
            Ok(Record {
                id: I::from_str(&id)
                    .map_err(|_| StoreError::Corrupt(format!("bad id {id:?}")))?,
                revision: row.try_get("revision")?,
                created_at: ts(row.try_get("created_at")?)?,
                updated_at: ts(row.try_get("updated_at")?)?,
                spec: serde_json::from_value(body)
                    .map_err(|e| StoreError::Corrupt(format!("body of {id}: {e}")))?,
            })
        }

        fn group_from_row(row: &DbRow) -> Result<GroupRecord, StoreError> {
            Ok(GroupRecord {
                record: record_from_row(row, None)?,
                config_revision: row.try_get("config_revision")?,
                config_hash: row.try_get("config_hash")?,
            })
        }

        fn agent_from_row(row: &DbRow) -> Result<$crate::store::AgentRow, StoreError> {
            let last_seen: Option<i64> = row.try_get("last_seen")?;
            Ok($crate::store::AgentRow {
                id: row.try_get("id")?,
                group_id: row.try_get("group_id")?,
                connected: row.try_get("connected")?,
                last_seen: last_seen.map(ts).transpose()?,
                state: row.try_get("state")?,
                replica_id: row.try_get("replica_id")?,
            })
        }

        fn rollout_from_row(row: &DbRow) -> Result<$crate::store::RolloutRow, StoreError> {
            let id: String = row.try_get("group_id")?;
            Ok($crate::store::RolloutRow {
                group_id: AgentGroupId::from_str(&id)
                    .map_err(|_| StoreError::Corrupt(format!("rollout group id {id:?}")))?,
                state: row.try_get("state")?,
                version: row.try_get("version")?,
            })
        }

        fn revision_from_row(row: &DbRow) -> Result<GroupRevision, StoreError> {
            let id: String = row.try_get("group_id")?;
            Ok(GroupRevision {
                group_id: AgentGroupId::from_str(&id)
                    .map_err(|_| StoreError::Corrupt(format!("bad id {id:?}")))?,
                revision: row.try_get("revision")?,
                yaml: row.try_get("yaml")?,
                hash: row.try_get("hash")?,
                created_at: ts(row.try_get("created_at")?)?,
            })
        }

        fn token_from_row(row: &DbRow) -> Result<TokenRecord, StoreError> {
            let id: String = row.try_get("id")?;
            let scope: String = row.try_get("scope")?;
            let scope = TokenScope::parse(&scope)
                .ok_or_else(|| StoreError::Corrupt(format!("token scope {scope:?}")))?;
            let opt_ts = |v: Option<i64>| v.map(ts).transpose();
            Ok(TokenRecord {
                id: TokenId::from_str(&id)
                    .map_err(|_| StoreError::Corrupt(format!("bad id {id:?}")))?,
                scope,
                hash: row.try_get("hash")?,
                description: row.try_get("description")?,
                created_at: ts(row.try_get("created_at")?)?,
                expires_at: opt_ts(row.try_get("expires_at")?)?,
                revoked_at: opt_ts(row.try_get("revoked_at")?)?,
            })
        }

        fn is_unique_violation(e: &sqlx::Error) -> bool {
            e.as_database_error()
                .is_some_and(|d| d.is_unique_violation())
        }

        async fn fetch_record<I, S>(
            conn: &mut Conn,
            key: &TokenKey,
            table: &str,
            id: &str,
        ) -> Result<Option<Record<I, S>>, StoreError>
        where
            I: FromStr,
            S: DeserializeOwned,
        {
            let row = sqlx::query(&format!("SELECT {COLS} FROM {table} WHERE id = $1"))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
            row.as_ref().map(|r| record_from_row(r, Some(key))).transpose()
        }

        async fn fetch_by_name<I, S>(
            conn: &mut Conn,
            key: &TokenKey,
            table: &str,
            name: &str,
        ) -> Result<Option<Record<I, S>>, StoreError>
        where
            I: FromStr,
            S: DeserializeOwned,
        {
            let row = sqlx::query(&format!("SELECT {COLS} FROM {table} WHERE name = $1"))
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?;
            row.as_ref().map(|r| record_from_row(r, Some(key))).transpose()
        }

        async fn fetch_all<I, S>(
            conn: &mut Conn,
            key: &TokenKey,
            table: &str,
        ) -> Result<Vec<Record<I, S>>, StoreError>
        where
            I: FromStr,
            S: DeserializeOwned,
        {
            let rows = sqlx::query(&format!("SELECT {COLS} FROM {table} ORDER BY name"))
                .fetch_all(&mut *conn)
                .await?;
            rows.iter().map(|r| record_from_row(r, Some(key))).collect()
        }

        async fn fetch_by_pipeline<I, S>(
            conn: &mut Conn,
            key: &TokenKey,
            table: &str,
            pipeline_id: &str,
        ) -> Result<Vec<Record<I, S>>, StoreError>
        where
            I: FromStr,
            S: DeserializeOwned,
        {
            let rows = sqlx::query(&format!(
                "SELECT {COLS} FROM {table} WHERE pipeline_id = $1 ORDER BY name"
            ))
            .bind(pipeline_id)
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(|r| record_from_row(r, Some(key))).collect()
        }

        async fn fetch_group(
            conn: &mut Conn,
            id: &str,
        ) -> Result<Option<GroupRecord>, StoreError> {
            let row = sqlx::query(&format!("SELECT {GROUP_COLS} FROM agent_groups WHERE id = $1"))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
            row.as_ref().map(group_from_row).transpose()
        }

        /// Fails with `NameTaken` when another object of the table has `name`.
        async fn check_name(
            conn: &mut Conn,
            table: &str,
            kind: Kind,
            name: &str,
            except_id: &str,
        ) -> Result<(), StoreError> {
            let row = sqlx::query(&format!("SELECT id FROM {table} WHERE name = $1 AND id <> $2"))
                .bind(name)
                .bind(except_id)
                .fetch_optional(&mut *conn)
                .await?;
            match row {
                Some(_) => Err(StoreError::NameTaken {
                    kind,
                    name: name.to_string(),
                }),
                None => Ok(()),
            }
        }

        fn check_revision(
            kind: Kind,
            id: &str,
            actual: i64,
            if_match: Option<i64>,
        ) -> Result<(), StoreError> {
            match if_match {
                Some(expected) if expected != actual => Err(StoreError::RevisionMismatch {
                    kind,
                    id: id.to_string(),
                    expected,
                    actual,
                }),
                _ => Ok(()),
            }
        }

        async fn check_pipeline_exists(
            conn: &mut Conn,
            field: &str,
            id: PipelineId,
        ) -> Result<(), StoreError> {
            let row = sqlx::query("SELECT id FROM pipelines WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&mut *conn)
                .await?;
            match row {
                Some(_) => Ok(()),
                None => Err(StoreError::DanglingReference {
                    field: field.to_string(),
                    kind: Kind::Pipeline,
                    id: id.to_string(),
                }),
            }
        }

        async fn groups_of_pipeline(
            conn: &mut Conn,
            pipeline_id: &str,
        ) -> Result<BTreeSet<String>, StoreError> {
            let rows = sqlx::query("SELECT group_id FROM agent_group_pipelines WHERE pipeline_id = $1")
                .bind(pipeline_id)
                .fetch_all(&mut *conn)
                .await?;
            rows.iter()
                .map(|r| r.try_get::<String, _>("group_id").map_err(StoreError::from))
                .collect()
        }

        /// Re-renders `groups` and records a new revision for each whose YAML changed.
        /// `require`: a create or update, refused when a pipeline it touches would be left out
        /// of a group's config; `None` (deletes, grace expiry) renders what is complete and
        /// leaves a group with no service pipeline at all on its last revision.
        async fn rerender(
            conn: &mut Conn,
            key: &TokenKey,
            policy: &$crate::policy::ConfigPolicy,
            groups: BTreeSet<String>,
            require: Option<&$crate::store::Require>,
        ) -> Result<Vec<GroupRevision>, StoreError> {
            let mut created = Vec::new();
            for gid in groups {
                let Some(group) = fetch_group(conn, &gid).await? else {
                    continue;
                };
                let mut pipelines: Vec<PipelineRecord> = Vec::new();
                let mut endpoints: Vec<EndpointRecord> = Vec::new();
                let mut bindings: Vec<BindingRecord> = Vec::new();
                let mut grace: $crate::render::TokenGrace = Default::default();
                let pids: BTreeSet<PipelineId> =
                    group.record.spec.pipeline_ids.iter().copied().collect();
                for pid in pids {
                    let pid = pid.to_string();
                    let p = fetch_record(conn, key, "pipelines", &pid).await?.ok_or_else(|| {
                        StoreError::Corrupt(format!("group {gid} uses missing pipeline {pid}"))
                    })?;
                    pipelines.push(p);
                    endpoints.extend(fetch_by_pipeline(conn, key, "endpoints", &pid).await?);
                    let rows = sqlx::query(
                        "SELECT id, previous_token_version FROM endpoints \
                         WHERE pipeline_id = $1 AND previous_token_until > $2",
                    )
                    .bind(&pid)
                    .bind(now_ms())
                    .fetch_all(&mut *conn)
                    .await?;
                    for r in &rows {
                        let id: String = r.try_get("id")?;
                        let version: i64 = r.try_get("previous_token_version")?;
                        let id = id.parse().map_err(|_| {
                            StoreError::Corrupt(format!("endpoint id {id:?} is not a UUID"))
                        })?;
                        let version = u32::try_from(version).map_err(|_| {
                            StoreError::Corrupt(format!("endpoint {id} token version {version}"))
                        })?;
                        grace.insert(id, version);
                    }
                    bindings.extend(fetch_by_pipeline(conn, key, "exporter_bindings", &pid).await?);
                }
                let rendered =
                    $crate::render::render_with_policy(
                        &group, &pipelines, &endpoints, &bindings, key, &grace, policy,
                    )
                        .map_err(|source| StoreError::Render {
                            group: group.record.spec.name.clone(),
                            source,
                        })?;
                if let Some(gap) = require.and_then(|r| r.blamed(&rendered.gaps)) {
                    return Err(StoreError::Incomplete {
                        group: group.record.spec.name.clone(),
                        field: require.map(|r| r.field(gap)).unwrap_or("pipeline_ids"),
                        gap: gap.clone(),
                    });
                }
                if !rendered.gaps.is_empty() {
                    // Expected after a delete (Terraform may destroy a binding before the group
                    // using its pipeline): not an error, the group keeps what it can run.
                    let gaps: Vec<String> = rendered.gaps.iter().map(ToString::to_string).collect();
                    tracing::info!(
                        group = %group.record.spec.name,
                        gaps = ?gaps,
                        service_pipelines = rendered.service_pipelines,
                        "Agent group config left incomplete parts out"
                    );
                }
                if rendered.service_pipelines == 0 {
                    tracing::info!(
                        group = %group.record.spec.name,
                        revision = group.config_revision,
                        "Agent group has no complete pipeline left: no new revision, its agents keep their last config"
                    );
                    continue;
                }
                let hash = rendered.hash_hex();
                if group.config_revision > 0 && group.config_hash == hash {
                    continue;
                }
                let revision = group.config_revision + 1;
                let now = now_ms();
                sqlx::query(
                    "INSERT INTO group_revisions (group_id, revision, yaml, hash, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&gid)
                .bind(revision)
                .bind(&rendered.yaml)
                .bind(&hash)
                .bind(now)
                .execute(&mut *conn)
                .await?;
                sqlx::query(
                    "UPDATE agent_groups SET config_revision = $1, config_hash = $2 WHERE id = $3",
                )
                .bind(revision)
                .bind(&hash)
                .bind(&gid)
                .execute(&mut *conn)
                .await?;
                created.push(GroupRevision {
                    group_id: group.record.id,
                    revision,
                    yaml: rendered.yaml,
                    hash,
                    created_at: ts(now)?,
                });
            }
            Ok(created)
        }

        /// Create/update/delete of the objects that hang off one pipeline (endpoints and
        /// bindings): the same steps, only the table differs.
        impl $store {
            fn render_policy(&self) -> $crate::policy::ConfigPolicy {
                self.policy.read().unwrap_or_else(|e| e.into_inner()).clone()
            }

            async fn create_child<I, S>(
                &self,
                table: &str,
                kind: Kind,
                id: I,
                name: &str,
                pipeline_id: PipelineId,
                spec: S,
            ) -> Result<Written<Record<I, S>>, StoreError>
            where
                I: FromStr + ToString + Copy + Send + Sync,
                S: Serialize + DeserializeOwned + Send + Sync,
            {
                let _guard = self.write_lock.lock().await;
                let mut tx = begin_write(&self.pool).await?;
                lock_writes(&mut tx).await?;
                check_pipeline_exists(&mut tx, "pipeline_id", pipeline_id).await?;
                let sid = id.to_string();
                check_name(&mut tx, table, kind, name, &sid).await?;
                let now = now_ms();
                let (body, secrets) = encode_split(&self.key, &spec);
                sqlx::query(&format!(
                    "INSERT INTO {table} (id, name, pipeline_id, revision, body, secrets, created_at, updated_at) \
                     VALUES ($1, $2, $3, 1, $4, $6, $5, $5)"
                ))
                .bind(&sid)
                .bind(name)
                .bind(pipeline_id.to_string())
                .bind(body)
                .bind(now)
                .bind(secrets)
                .execute(&mut *tx)
                .await
                .map_err(|e| name_error(e, kind, name))?;
                let groups = groups_of_pipeline(&mut tx, &pipeline_id.to_string()).await?;
                let revisions = rerender(&mut tx, &self.key, &self.render_policy(), groups, Some(&$crate::store::Require::child(kind, pipeline_id, pipeline_id))).await?;
                let value = fetch_record(&mut tx, &self.key, table, &sid)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("{kind} {sid} vanished")))?;
                tx.commit().await?;
                Ok(Written { value, revisions })
            }

            #[allow(clippy::too_many_arguments)]
            async fn update_child<I, S>(
                &self,
                table: &str,
                kind: Kind,
                id: I,
                name: &str,
                pipeline_id: PipelineId,
                spec: S,
                if_match: Option<i64>,
                old_pipeline: impl Fn(&S) -> PipelineId + Send + Sync,
                merge: impl FnOnce(&S, S) -> (S, $crate::store::TokenGrace) + Send,
            ) -> Result<Written<Record<I, S>>, StoreError>
            where
                I: FromStr + ToString + Copy + Send + Sync,
                S: Serialize + DeserializeOwned + Send + Sync,
            {
                let _guard = self.write_lock.lock().await;
                let mut tx = begin_write(&self.pool).await?;
                lock_writes(&mut tx).await?;
                let sid = id.to_string();
                let current: Record<I, S> = fetch_record(&mut tx, &self.key, table, &sid)
                    .await?
                    .ok_or_else(|| StoreError::NotFound { kind, id: sid.clone() })?;
                check_revision(kind, &sid, current.revision, if_match)?;
                let (spec, grace) = merge(&current.spec, spec);
                check_pipeline_exists(&mut tx, "pipeline_id", pipeline_id).await?;
                check_name(&mut tx, table, kind, name, &sid).await?;
                let (body, secrets) = encode_split(&self.key, &spec);
                sqlx::query(&format!(
                    "UPDATE {table} SET name = $1, pipeline_id = $2, body = $3, secrets = $6, \
                     revision = revision + 1, updated_at = $4 WHERE id = $5"
                ))
                .bind(name)
                .bind(pipeline_id.to_string())
                .bind(body)
                .bind(now_ms())
                .bind(&sid)
                .bind(secrets)
                .execute(&mut *tx)
                .await
                .map_err(|e| name_error(e, kind, name))?;
                // Only endpoint updates start or end a grace (the columns are theirs).
                match grace {
                    $crate::store::TokenGrace::Keep => {}
                    $crate::store::TokenGrace::Start { previous_version, seconds } => {
                        sqlx::query(&format!(
                            "UPDATE {table} SET previous_token_version = $1, \
                             previous_token_until = $2 WHERE id = $3"
                        ))
                        .bind(i64::from(previous_version))
                        .bind(now_ms() + i64::from(seconds) * 1000)
                        .bind(&sid)
                        .execute(&mut *tx)
                        .await?;
                    }
                    $crate::store::TokenGrace::End => {
                        sqlx::query(&format!(
                            "UPDATE {table} SET previous_token_version = NULL, \
                             previous_token_until = NULL WHERE id = $1"
                        ))
                        .bind(&sid)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                let mut groups =
                    groups_of_pipeline(&mut tx, &old_pipeline(&current.spec).to_string()).await?;
                groups.extend(groups_of_pipeline(&mut tx, &pipeline_id.to_string()).await?);
                let revisions = rerender(&mut tx, &self.key, &self.render_policy(), groups, Some(&$crate::store::Require::child(kind, old_pipeline(&current.spec), pipeline_id))).await?;
                let value = fetch_record(&mut tx, &self.key, table, &sid)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("{kind} {sid} vanished")))?;
                tx.commit().await?;
                Ok(Written { value, revisions })
            }

            async fn delete_child<S>(
                &self,
                table: &str,
                kind: Kind,
                id: &str,
                pipeline_of: impl Fn(&S) -> PipelineId + Send + Sync,
            ) -> Result<Written<()>, StoreError>
            where
                S: DeserializeOwned + Send + Sync,
            {
                let _guard = self.write_lock.lock().await;
                let mut tx = begin_write(&self.pool).await?;
                lock_writes(&mut tx).await?;
                let current: Record<String, S> = fetch_record(&mut tx, &self.key, table, id)
                    .await?
                    .ok_or_else(|| StoreError::NotFound { kind, id: id.to_string() })?;
                sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let groups =
                    groups_of_pipeline(&mut tx, &pipeline_of(&current.spec).to_string()).await?;
                let revisions = rerender(&mut tx, &self.key, &self.render_policy(), groups, None).await?;
                tx.commit().await?;
                Ok(Written { value: (), revisions })
            }

            async fn write_group_pipelines(
                conn: &mut Conn,
                id: &str,
                spec: &AgentGroupSpec,
            ) -> Result<(), StoreError> {
                for (i, pid) in spec.pipeline_ids.iter().enumerate() {
                    check_pipeline_exists(conn, &format!("pipeline_ids[{i}]"), *pid).await?;
                }
                sqlx::query("DELETE FROM agent_group_pipelines WHERE group_id = $1")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
                let mut seen = BTreeSet::new();
                for (i, pid) in spec.pipeline_ids.iter().enumerate() {
                    if !seen.insert(*pid) {
                        continue;
                    }
                    sqlx::query(
                        "INSERT INTO agent_group_pipelines (group_id, pipeline_id, position) \
                         VALUES ($1, $2, $3)",
                    )
                    .bind(id)
                    .bind(pid.to_string())
                    .bind(i as i64)
                    .execute(&mut *conn)
                    .await?;
                }
                Ok(())
            }
        }

        fn name_error(e: sqlx::Error, kind: Kind, name: &str) -> StoreError {
            if is_unique_violation(&e) {
                StoreError::NameTaken {
                    kind,
                    name: name.to_string(),
                }
            } else {
                StoreError::Database(e)
            }
        }

        /// Loads the endpoint-token key, creating it on first open (shared by replicas).
        async fn load_or_create_key(pool: &sqlx::Pool<$db>) -> Result<TokenKey, StoreError> {
            sqlx::query(
                "INSERT INTO server_secrets (name, value) VALUES ('endpoint_token_key', $1) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(TokenKey::generate().to_hex())
            .execute(pool)
            .await?;
            let row = sqlx::query("SELECT value FROM server_secrets WHERE name = 'endpoint_token_key'")
                .fetch_one(pool)
                .await?;
            let hex: String = row.try_get("value")?;
            TokenKey::from_hex(&hex)
                .ok_or_else(|| StoreError::Corrupt("endpoint_token_key is not 32 hex bytes".into()))
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                BACKEND
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            fn token_key(&self) -> &TokenKey {
                &self.key
            }

            fn set_config_policy(&self, policy: $crate::policy::ConfigPolicy) {
                *self.policy.write().unwrap_or_else(|e| e.into_inner()) = policy;
            }

            // ---- pipelines

            async fn create_pipeline(
                &self,
                spec: PipelineSpec,
            ) -> Result<Written<PipelineRecord>, StoreError> {
                let _guard = self.write_lock.lock().await;
                let mut tx = begin_write(&self.pool).await?;
                lock_writes(&mut tx).await?;
                let id = PipelineId::new().to_string();
                check_name(&mut tx, "pipelines", Kind::Pipeline, &spec.name, &id).await?;
                let now = now_ms();
                let (body, secrets) = encode_split(&self.key, &spec);
                sqlx::query(
                    "INSERT INTO pipelines (id, name, revision, body, secrets, created_at, updated_at) \
                     VALUES ($1, $2, 1, $3, $5, $4, $4)",
                )
                .bind(&id)
                .bind(&spec.name)
                .bind(body)
                .bind(now)
                .bind(secrets)
                .execute(&mut *tx)
                .await
                .map_err(|e| name_error(e, Kind::Pipeline, &spec.name))?;
                let value = fetch_record(&mut tx, &self.key, "pipelines", &id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("pipeline {id} vanished")))?;
                tx.commit().await?;
                Ok(Written { value, revisions: Vec::new() })
            }

            async fn get_pipeline(&self, id: PipelineId) -> Result<PipelineRecord, StoreError> {
                let mut conn = self.pool.acquire().await?;
                fetch_record(&mut conn, &self.key, "pipelines", &id.to_string())
                    .await?
                    .ok_or_else(|| StoreError::NotFound { kind: Kind::Pipeline, id: id.to_string() })
            }

            async fn find_pipeline(&self, name: &str) -> Result<Option<PipelineRecord>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                fetch_by_name(&mut conn, &self.key, "pipelines", name).await
            }

            async fn list_pipelines(&self) -> Result<Vec<PipelineRecord>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                fetch_all(&mut conn, &self.key, "pipelines").await
            }

            async fn update_pipeline(
                &self,
                id: PipelineId,
                spec: PipelineSpec,
                if_match: Option<i64>,
            ) -> Result<Written<PipelineRecord>, StoreError> {
                let _guard = self.write_lock.lock().await;
                let mut tx = begin_write(&self.pool).await?;
                lock_writes(&mut tx).await?;
                let sid = id.to_string();
                let current: PipelineRecord = fetch_record(&mut tx, &self.key, "pipelines", &sid)
                    .await?
                    .ok_or_else(|| StoreError::NotFound { kind: Kind::Pipeline, id: sid.clone() })?;
                check_revision(Kind::Pipeline, &sid, current.revision, if_match)?;
                let spec = $crate::store::merge_pipeline(&current.spec, spec);
                check_name(&mut tx, "pipelines", Kind::Pipeline, &spec.name, &sid).await?;
                let (body, secrets) = encode_split(&self.key, &spec);
                sqlx::query(
                    "UPDATE pipelines SET name = $1, body = $2, secrets = $5, revision = revision + 1, \
                     updated_at = $3 WHERE id = $4",
                )
                .bind(&spec.name)
                .bind(body)
                .bind(now_ms())
                .bind(&sid)
                .bind(secrets)
                .execute(&mut *tx)
                .await
                .map_err(|e| name_error(e, Kind::Pipeline, &spec.name))?;
                let groups = groups_of_pipeline(&mut tx, &sid).await?;
                let revisions = rerender(&mut tx, &self.key, &self.render_policy(), groups, Some(&$crate::store::Require::pipeline(id))).await?;
                let value = fetch_record(&mut tx, &self.key, "pipelines", &sid)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("pipeline {sid} vanished")))?;
                tx.commit().await?;
                Ok(Written { value, revisions })
            }

            async fn delete_pipeline(&self, id: PipelineId) -> Result<Written<()>, StoreError> {
                let _guard = self.write_lock.lock().await;
                let mut tx = begin_write(&self.pool).await?;
                lock_writes(&mut tx).await?;
                let sid = id.to_string();
                let current: PipelineRecord = fetch_record(&mut tx, &self.key, "pipelines", &sid)
                    .await?
                    .ok_or_else(|| StoreError::NotFound { kind: Kind::Pipeline, id: sid.clone() })?;
                // Referrers, in a fixed order so the error is predictable.
                let checks: [(&str, Kind); 3] = [
                    (
                        "SELECT id, name FROM endpoints WHERE pipeline_id = $1 ORDER BY name LIMIT 1",
                        Kind::Endpoint,
                    ),
                    (
                        "SELECT id, name FROM exporter_bindings WHERE pipeline_id = $1 ORDER BY name LIMIT 1",
                        Kind::ExporterBinding,
                    ),
                    (
                        "SELECT g.id AS id, g.name AS name FROM agent_group_pipelines gp \
                         JOIN agent_groups g ON g.id = gp.group_id \
                         WHERE gp.pipeline_id = $1 ORDER BY g.name LIMIT 1",
                        Kind::AgentGroup,
                    ),
                ];
                for (sql, referrer_kind) in checks {
                    if let Some(row) = sqlx::query(sql).bind(&sid).fetch_optional(&mut *tx).await? {
                        return Err(StoreError::InUse {
                            kind: Kind::Pipeline,
                            name: current.spec.name.clone(),
                            referrer_kind,
                            referrer_name: row.try_get("name")?,
                            referrer_id: row.try_get("id")?,
                        });
                    }
                }
                sqlx::query("DELETE FROM pipelines WHERE id = $1")
                    .bind(&sid)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Written { value: (), revisions: Vec::new() })
            }

            // ---- endpoints

            async fn create_endpoint(
                &self,
                spec: EndpointSpec,
            ) -> Result<Written<EndpointRecord>, StoreError> {
                let (name, pid) = (spec.name.clone(), spec.pipeline_id);
                self.create_child("endpoints", Kind::Endpoint, EndpointId::new(), &name, pid, spec)
                    .await
            }

            async fn get_endpoint(&self, id: EndpointId) -> Result<EndpointRecord, StoreError> {
                let mut conn = self.pool.acquire().await?;
                fetch_record(&mut conn, &self.key, "endpoints", &id.to_string())
                    .await?
                    .ok_or_else(|| StoreError::NotFound { kind: Kind::Endpoint, id: id.to_string() })
            }

            async fn find_endpoint(&self, name: &str) -> Result<Option<EndpointRecord>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                fetch_by_name(&mut conn, &self.key, "endpoints", name).await
            }

            async fn list_endpoints(&self) -> Result<Vec<EndpointRecord>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                fetch_all(&mut conn, &self.key, "endpoints").await
            }

            async fn update_endpoint(
                &self,
                id: EndpointId,
                spec: EndpointSpec,
                if_match: Option<i64>,
            ) -> Result<Written<EndpointRecord>, StoreError> {
                let (name, pid) = (spec.name.clone(), spec.pipeline_id);
                self.update_child(
                    "endpoints",
                    Kind::Endpoint,
                    id,
                    &name,
                    pid,
                    spec,
                    if_match,
                    |s: &EndpointSpec| s.pipeline_id,
                    |current: &EndpointSpec, new| {
                        let grace = $crate::store::token_grace(current, &new);
                        (new, grace)
                    },
                )
                .await
            }

            async fn expire_token_grace(&self) -> Result<Written<usize>, StoreError> {
                let now = now_ms();
                {
                    let mut conn = self.pool.acquire().await?;
                    let due: i64 = sqlx::query(
                        "SELECT COUNT(*) AS n FROM endpoints WHERE previous_token_until <= $1",
                    )
                    .bind(now)
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get("n")?;
                    if due == 0 {
                        return Ok(Written { value: 0, revisions: Vec::new() });
                    }
                }
                let _guard = self.write_lock.lock().await;
                let mut tx = begin_write(&self.pool).await?;
                lock_writes(&mut tx).await?;
                let rows = sqlx::query(
                    "SELECT pipeline_id FROM endpoints WHERE previous_token_until <= $1",
                )
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
                let mut groups = BTreeSet::new();
                for r in &rows {
                    let pid: String = r.try_get("pipeline_id")?;
                    groups.extend(groups_of_pipeline(&mut tx, &pid).await?);
                }
                sqlx::query(
                    "UPDATE endpoints SET previous_token_version = NULL, \
                     previous_token_until = NULL WHERE previous_token_until <= $1",
                )
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let revisions = rerender(&mut tx, &self.key, &self.render_policy(), groups, None).await?;
                tx.commit().await?;
                Ok(Written { value: rows.len(), revisions })
            }

            async fn delete_endpoint(&self, id: EndpointId) -> Result<Written<()>, StoreError> {
                self.delete_child("endpoints", Kind::Endpoint, &id.to_string(), |s: &EndpointSpec| {
                    s.pipeline_id
                })
                .await
            }

            // ---- exporter bindings

            async fn create_binding(
                &self,
                spec: ExporterBindingSpec,
            ) -> Result<Written<BindingRecord>, StoreError> {
                let (name, pid) = (spec.name.clone(), spec.pipeline_id);
                // Nothing to keep on create: the stored body always holds the whole header set.
                let mut spec = spec;
                for d in &mut spec.destinations {
                    d.keep_headers = false;
                }
                self.create_child(
                    "exporter_bindings",
                    Kind::ExporterBinding,
                    ExporterBindingId::new(),
                    &name,
                    pid,
                    spec,
                )
                .await
            }

            async fn get_binding(&self, id: ExporterBindingId) -> Result<BindingRecord, StoreError> {
                let mut conn = self.pool.acquire().await?;
                fetch_record(&mut conn, &self.key, "exporter_bindings", &id.to_string())
                    .await?
                    .ok_or_else(|| StoreError::NotFound {
                        kind: Kind::ExporterBinding,
                        id: id.to_string(),
                    })
            }

            async fn find_binding(&self, name: &str) -> Result<Option<BindingRecord>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                fetch_by_name(&mut conn, &self.key, "exporter_bindings", name).await
            }

            async fn list_bindings(&self) -> Result<Vec<BindingRecord>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                fetch_all(&mut conn, &self.key, "exporter_bindings").await
            }

            async fn update_binding(
                &self,
                id: ExporterBindingId,
                spec: ExporterBindingSpec,
                if_match: Option<i64>,
            ) -> Result<Written<BindingRecord>, StoreError> {
                let (name, pid) = (spec.name.clone(), spec.pipeline_id);
                self.update_child(
                    "exporter_bindings",
                    Kind::ExporterBinding,
                    id,
                    &name,
                    pid,
                    spec,
                    if_match,
                    |s: &ExporterBindingSpec| s.pipeline_id,
                    |current: &ExporterBindingSpec, new| {
                        ($crate::store::merge_binding(current, new), $crate::store::TokenGrace::Keep)
                    },
                )
                .await
            }

            async fn delete_binding(&self, id: ExporterBindingId) -> Result<Written<()>, StoreError> {
                self.delete_child(
                    "exporter_bindings",
                    Kind::ExporterBinding,
                    &id.to_string(),
                    |s: &ExporterBindingSpec| s.pipeline_id,
                )
                .await
            }

            // ---- agent groups

            async fn create_group(
                &self,
                spec: AgentGroupSpec,
            ) -> Result<Written<GroupRecord>, StoreError> {
                let _guard = self.write_lock.lock().await;
                let mut tx = begin_write(&self.pool).await?;
                lock_writes(&mut tx).await?;
                let id = AgentGroupId::new().to_string();
                check_name(&mut tx, "agent_groups", Kind::AgentGroup, &spec.name, &id).await?;
                let now = now_ms();
                sqlx::query(
                    "INSERT INTO agent_groups (id, name, revision, body, config_revision, \
                     config_hash, created_at, updated_at) VALUES ($1, $2, 1, $3, 0, '', $4, $4)",
                )
                .bind(&id)
                .bind(&spec.name)
                .bind(encode(&spec))
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| name_error(e, Kind::AgentGroup, &spec.name))?;
                Self::write_group_pipelines(&mut tx, &id, &spec).await?;
                let revisions = rerender(&mut tx, &self.key, &self.render_policy(), BTreeSet::from([id.clone()]), Some(&$crate::store::Require::group())).await?;
                let value = fetch_group(&mut tx, &id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("group {id} vanished")))?;
                tx.commit().await?;
                Ok(Written { value, revisions })
            }

            async fn get_group(&self, id: AgentGroupId) -> Result<GroupRecord, StoreError> {
                let mut conn = self.pool.acquire().await?;
                fetch_group(&mut conn, &id.to_string())
                    .await?
                    .ok_or_else(|| StoreError::NotFound { kind: Kind::AgentGroup, id: id.to_string() })
            }

            async fn find_group(&self, name: &str) -> Result<Option<GroupRecord>, StoreError> {
                let row = sqlx::query(&format!(
                    "SELECT {GROUP_COLS} FROM agent_groups WHERE name = $1"
                ))
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(group_from_row).transpose()
            }

            async fn list_groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {GROUP_COLS} FROM agent_groups ORDER BY name"
                ))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(group_from_row).collect()
            }

            async fn update_group(
                &self,
                id: AgentGroupId,
                spec: AgentGroupSpec,
                if_match: Option<i64>,
            ) -> Result<Written<GroupRecord>, StoreError> {
                let _guard = self.write_lock.lock().await;
                let mut tx = begin_write(&self.pool).await?;
                lock_writes(&mut tx).await?;
                let sid = id.to_string();
                let current = fetch_group(&mut tx, &sid).await?.ok_or_else(|| {
                    StoreError::NotFound { kind: Kind::AgentGroup, id: sid.clone() }
                })?;
                check_revision(Kind::AgentGroup, &sid, current.record.revision, if_match)?;
                check_name(&mut tx, "agent_groups", Kind::AgentGroup, &spec.name, &sid).await?;
                sqlx::query(
                    "UPDATE agent_groups SET name = $1, body = $2, revision = revision + 1, \
                     updated_at = $3 WHERE id = $4",
                )
                .bind(&spec.name)
                .bind(encode(&spec))
                .bind(now_ms())
                .bind(&sid)
                .execute(&mut *tx)
                .await
                .map_err(|e| name_error(e, Kind::AgentGroup, &spec.name))?;
                Self::write_group_pipelines(&mut tx, &sid, &spec).await?;
                let revisions = rerender(&mut tx, &self.key, &self.render_policy(), BTreeSet::from([sid.clone()]), Some(&$crate::store::Require::group())).await?;
                let value = fetch_group(&mut tx, &sid)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt(format!("group {sid} vanished")))?;
                tx.commit().await?;
                Ok(Written { value, revisions })
            }

            async fn delete_group(&self, id: AgentGroupId) -> Result<Written<()>, StoreError> {
                let _guard = self.write_lock.lock().await;
                let mut tx = begin_write(&self.pool).await?;
                lock_writes(&mut tx).await?;
                let sid = id.to_string();
                if fetch_group(&mut tx, &sid).await?.is_none() {
                    return Err(StoreError::NotFound { kind: Kind::AgentGroup, id: sid });
                }
                for sql in [
                    "DELETE FROM agent_group_pipelines WHERE group_id = $1",
                    "DELETE FROM group_revisions WHERE group_id = $1",
                    "DELETE FROM agent_groups WHERE id = $1",
                ] {
                    sqlx::query(sql).bind(&sid).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(Written { value: (), revisions: Vec::new() })
            }

            async fn group_revision(
                &self,
                id: AgentGroupId,
                revision: Option<i64>,
            ) -> Result<GroupRevision, StoreError> {
                let sid = id.to_string();
                let row = match revision {
                    Some(r) => {
                        sqlx::query(
                            "SELECT group_id, revision, yaml, hash, created_at FROM group_revisions \
                             WHERE group_id = $1 AND revision = $2",
                        )
                        .bind(&sid)
                        .bind(r)
                        .fetch_optional(&self.pool)
                        .await?
                    }
                    None => {
                        sqlx::query(
                            "SELECT group_id, revision, yaml, hash, created_at FROM group_revisions \
                             WHERE group_id = $1 ORDER BY revision DESC LIMIT 1",
                        )
                        .bind(&sid)
                        .fetch_optional(&self.pool)
                        .await?
                    }
                };
                match row {
                    Some(row) => revision_from_row(&row),
                    None => Err(StoreError::NotFound {
                        kind: Kind::AgentGroup,
                        id: match revision {
                            Some(r) => format!("{sid} revision {r}"),
                            None => sid,
                        },
                    }),
                }
            }

            async fn group_revisions(
                &self,
                id: AgentGroupId,
            ) -> Result<Vec<GroupRevision>, StoreError> {
                let rows = sqlx::query(
                    "SELECT group_id, revision, yaml, hash, created_at FROM group_revisions \
                     WHERE group_id = $1 ORDER BY revision",
                )
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(revision_from_row).collect()
            }

            // ---- tokens

            async fn create_token_expiring(
                &self,
                scope: TokenScope,
                description: &str,
                hash: &str,
                created_at: DateTime<Utc>,
                expires_at: Option<DateTime<Utc>>,
            ) -> Result<TokenRecord, StoreError> {
                let id = TokenId::new().to_string();
                let _guard = self.write_lock.lock().await;
                let mut tx = begin_write(&self.pool).await?;
                sqlx::query(
                    "INSERT INTO tokens (id, scope, hash, description, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&id)
                .bind(scope.as_str())
                .bind(hash)
                .bind(description)
                .bind(created_at.timestamp_millis())
                .bind(expires_at.map(|t| t.timestamp_millis()))
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query(&format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = $1"))
                    .bind(&id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                token_from_row(&row)
            }

            async fn find_token_by_hash(
                &self,
                hash: &str,
            ) -> Result<Option<TokenRecord>, StoreError> {
                let row = sqlx::query(&format!("SELECT {TOKEN_COLS} FROM tokens WHERE hash = $1"))
                    .bind(hash)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(token_from_row).transpose()
            }

            async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {TOKEN_COLS} FROM tokens ORDER BY created_at, id"
                ))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(token_from_row).collect()
            }

            async fn revoke_token(&self, id: TokenId) -> Result<TokenRecord, StoreError> {
                let _guard = self.write_lock.lock().await;
                let mut tx = begin_write(&self.pool).await?;
                // COALESCE keeps the first revocation time when revoked twice.
                sqlx::query(
                    "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
                )
                .bind(now_ms())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query(&format!("SELECT {TOKEN_COLS} FROM tokens WHERE id = $1"))
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.commit().await?;
                match row {
                    Some(row) => token_from_row(&row),
                    None => Err(StoreError::NotFound {
                        kind: Kind::Token,
                        id: id.to_string(),
                    }),
                }
            }

            async fn count_active_tokens(&self, scope: TokenScope) -> Result<u64, StoreError> {
                let row = sqlx::query(
                    "SELECT COUNT(*) AS n FROM tokens WHERE scope = $1 AND revoked_at IS NULL \
                     AND (expires_at IS NULL OR expires_at > $2)",
                )
                .bind(scope.as_str())
                .bind(now_ms())
                .fetch_one(&self.pool)
                .await?;
                let n: i64 = row.try_get("n")?;
                Ok(n.max(0) as u64)
            }

            async fn upsert_agents(
                &self,
                agents: &[$crate::store::AgentRow],
            ) -> Result<(), StoreError> {
                if agents.is_empty() {
                    return Ok(());
                }
                // One statement may not touch a row twice (PostgreSQL refuses): the last row
                // per id wins. Sorted, so two writers lock rows in the same order.
                let mut latest: std::collections::HashMap<&str, &$crate::store::AgentRow> =
                    std::collections::HashMap::with_capacity(agents.len());
                for agent in agents {
                    latest.insert(agent.id.as_str(), agent);
                }
                let mut rows: Vec<&$crate::store::AgentRow> = latest.into_values().collect();
                rows.sort_by(|a, b| a.id.cmp(&b.id));
                // Agent rows are not config: no advisory lock, only the in-process writer queue.
                let _guard = self.write_lock.lock().await;
                let mut tx = begin_write(&self.pool).await?;
                let now = now_ms();
                for chunk in rows.chunks($crate::store::AGENT_ROWS_PER_STATEMENT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO agents \
                         (id, group_id, connected, last_seen, state, updated_at, replica_id) ",
                    );
                    insert.push_values(chunk, |mut row, agent| {
                        row.push_bind(agent.id.as_str())
                            .push_bind(agent.group_id.as_deref())
                            .push_bind(agent.connected)
                            .push_bind(agent.last_seen.map(|t| t.timestamp_millis()))
                            .push_bind(agent.state.as_str())
                            .push_bind(now)
                            .push_bind(agent.replica_id.as_deref());
                    });
                    // "Disconnected" from one replica must not hide that another replica holds
                    // the agent now (it reconnected there before this replica noticed).
                    insert.push(
                        " ON CONFLICT (id) DO UPDATE SET group_id = excluded.group_id, \
                         connected = excluded.connected, last_seen = excluded.last_seen, \
                         state = excluded.state, updated_at = excluded.updated_at, \
                         replica_id = excluded.replica_id \
                         WHERE excluded.connected OR NOT agents.connected \
                         OR agents.replica_id IS NULL OR excluded.replica_id IS NULL \
                         OR agents.replica_id = excluded.replica_id",
                    );
                    insert.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn touch_agents(
                &self,
                seen: &[(String, chrono::DateTime<chrono::Utc>)],
            ) -> Result<(), StoreError> {
                if seen.is_empty() {
                    return Ok(());
                }
                let mut rows: Vec<&(String, chrono::DateTime<chrono::Utc>)> =
                    seen.iter().collect();
                // Same lock order as `upsert_agents`.
                rows.sort_by(|a, b| a.0.cmp(&b.0));
                let _guard = self.write_lock.lock().await;
                let mut tx = begin_write(&self.pool).await?;
                for chunk in rows.chunks($crate::store::AGENT_ROWS_PER_STATEMENT) {
                    // Only moves forward: a touch queued before a newer full write loses.
                    let mut update =
                        sqlx::QueryBuilder::<$db>::new("WITH seen (id, last_seen) AS (");
                    update.push_values(chunk, |mut row, (id, at)| {
                        row.push_bind(id.as_str())
                            .push_bind(at.timestamp_millis());
                    });
                    update.push(
                        ") UPDATE agents SET last_seen = seen.last_seen FROM seen \
                         WHERE agents.id = seen.id \
                         AND (agents.last_seen IS NULL OR agents.last_seen < seen.last_seen)",
                    );
                    update.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn list_agents(&self) -> Result<Vec<$crate::store::AgentRow>, StoreError> {
                self.list_agent_rows(&$crate::store::AgentRowFilter::default())
                    .await
            }

            async fn list_agent_rows(
                &self,
                filter: &$crate::store::AgentRowFilter,
            ) -> Result<Vec<$crate::store::AgentRow>, StoreError> {
                let mut query = sqlx::QueryBuilder::<$db>::new(
                    "SELECT id, group_id, connected, last_seen, state, replica_id FROM agents \
                     WHERE 1 = 1",
                );
                if let Some(group) = &filter.group_id {
                    query.push(" AND group_id = ").push_bind(group.clone());
                }
                if let Some(replica) = &filter.not_replica {
                    query
                        .push(" AND (replica_id IS NULL OR replica_id <> ")
                        .push_bind(replica.clone())
                        .push(")");
                }
                query.push(" ORDER BY id");
                let rows = query.build().fetch_all(&self.pool).await?;
                rows.iter().map(agent_from_row).collect()
            }

            async fn get_agent_row(
                &self,
                id: &str,
            ) -> Result<Option<$crate::store::AgentRow>, StoreError> {
                let row = sqlx::query(
                    "SELECT id, group_id, connected, last_seen, state, replica_id FROM agents \
                     WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(agent_from_row).transpose()
            }

            async fn register_replica(
                &self,
                id: &str,
                api: &str,
                opamp: &str,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO replicas (id, started_at, api, opamp) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO UPDATE SET started_at = excluded.started_at, \
                     api = excluded.api, opamp = excluded.opamp",
                )
                .bind(id)
                .bind(now_ms())
                .bind(api)
                .bind(opamp)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn put_rollout(&self, group_id: AgentGroupId, state: &str) -> Result<(), StoreError> {
                let _guard = self.write_lock.lock().await;
                sqlx::query(
                    "INSERT INTO rollouts (group_id, state, updated_at, version) \
                     VALUES ($1, $2, $3, 1) \
                     ON CONFLICT (group_id) DO UPDATE SET state = excluded.state, \
                     updated_at = excluded.updated_at, version = rollouts.version + 1",
                )
                .bind(group_id.to_string())
                .bind(state)
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_rollout(
                &self,
                group_id: AgentGroupId,
            ) -> Result<Option<$crate::store::RolloutRow>, StoreError> {
                let row = sqlx::query(
                    "SELECT group_id, state, version FROM rollouts WHERE group_id = $1",
                )
                .bind(group_id.to_string())
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(rollout_from_row).transpose()
            }

            async fn put_rollout_if(
                &self,
                group_id: AgentGroupId,
                state: &str,
                expected: Option<i64>,
            ) -> Result<Option<i64>, StoreError> {
                let _guard = self.write_lock.lock().await;
                let done = match expected {
                    None => sqlx::query(
                        "INSERT INTO rollouts (group_id, state, updated_at, version) \
                         VALUES ($1, $2, $3, 1) ON CONFLICT (group_id) DO NOTHING",
                    )
                    .bind(group_id.to_string())
                    .bind(state)
                    .bind(now_ms())
                    .execute(&self.pool)
                    .await?
                    .rows_affected(),
                    Some(version) => sqlx::query(
                        "UPDATE rollouts SET state = $2, updated_at = $3, version = $4 + 1 \
                         WHERE group_id = $1 AND version = $4",
                    )
                    .bind(group_id.to_string())
                    .bind(state)
                    .bind(now_ms())
                    .bind(version)
                    .execute(&self.pool)
                    .await?
                    .rows_affected(),
                };
                Ok((done == 1).then(|| expected.unwrap_or(0) + 1))
            }

            async fn list_rollouts(&self) -> Result<Vec<$crate::store::RolloutRow>, StoreError> {
                let rows =
                    sqlx::query("SELECT group_id, state, version FROM rollouts ORDER BY group_id")
                        .fetch_all(&self.pool)
                        .await?;
                rows.iter().map(rollout_from_row).collect()
            }

            async fn delete_rollout(&self, group_id: AgentGroupId) -> Result<(), StoreError> {
                let _guard = self.write_lock.lock().await;
                sqlx::query("DELETE FROM rollouts WHERE group_id = $1")
                    .bind(group_id.to_string())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            fn pg_pool(&self) -> Option<&sqlx::PgPool> {
                pg_pool_of(&self.pool)
            }
        }
    };
}

pub(super) use sql_store;
