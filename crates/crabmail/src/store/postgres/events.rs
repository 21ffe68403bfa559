use super::*;

#[async_trait]
impl Events for PgStore {
    async fn list_events(
        &self,
        account_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        let rows = sqlx::query(sql::LIST_EVENTS)
            .bind(account_id)
            .bind(after)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(rows::event)
            .collect::<std::result::Result<_, _>>()?)
    }

    async fn follow_arrivals(&self, notify: Arc<dyn Fn(Wake) + Send + Sync>) -> Result<()> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(ARRIVALS_CHANNEL).await?;
        loop {
            // recv() reconnects by itself after a lost connection; arrivals missed meanwhile are
            // still found by the long-poll's periodic re-check.
            match listener.recv().await {
                Ok(note) => {
                    if let Some((topic, seq)) = note.payload().split_once(' ') {
                        notify(Wake {
                            topic: topic.to_owned(),
                            seq: seq.parse().unwrap_or(0),
                        });
                    }
                }
                Err(sqlx::Error::PoolClosed) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, "postgres: arrival listener lost its connection");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
        }
    }
}
