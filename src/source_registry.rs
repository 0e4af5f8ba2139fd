//! The sources every request is checked against, held in memory.
//!
//! A webhook request looks its source up here (a map read, never a query).
//! Each node reloads the map when `sources.updated_at` moves: a change made
//! on one node reaches the others within one [`REFRESH_PERIOD`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use time::OffsetDateTime;

use crate::ingest::{SecretRing, SignatureMode, unix_micros};
use crate::signature::WebhookSecret;
use crate::source::{
    BUILTIN_SOURCE, Mapping, MappingOverrides, Preset, SourceScheme, parse_source_secret,
};
use crate::store::{Store, StoreError, StoredSource};

/// How often a node checks whether the sources changed.
pub const REFRESH_PERIOD: Duration = Duration::from_millis(500);

/// Where a source's secrets come from.
#[derive(Clone)]
pub enum SourceSecrets {
    /// The built-in source: the environment's secrets, or the generated ones.
    Ring(SecretRing),
    /// A source's own ring, from the database, each secret with the time it
    /// stops verifying (a rotated-out one).
    Stored(Arc<[(WebhookSecret, Option<i64>)]>),
}

impl SourceSecrets {
    /// The secrets that verify now. A rotated-out secret stops at its
    /// expiry even when this node cannot reach the database to reload.
    pub fn current(&self) -> Arc<[WebhookSecret]> {
        match self {
            Self::Ring(ring) => ring.current(),
            Self::Stored(secrets) => {
                let now_us = unix_micros(OffsetDateTime::now_utc());
                secrets
                    .iter()
                    .filter(|(_, expires_at_us)| expires_at_us.is_none_or(|at| at > now_us))
                    .map(|(secret, _)| secret.clone())
                    .collect()
            }
        }
    }
}

/// One source as a request sees it.
#[derive(Clone)]
pub struct ConfiguredSource {
    pub name: String,
    pub preset: Preset,
    pub schemes: Vec<SourceScheme>,
    pub mode: SignatureMode,
    pub enabled: bool,
    pub token_header: Option<String>,
    /// The preset's rules with the source's overrides applied.
    pub mapping: Mapping,
    /// Only the overrides, as configured.
    pub overrides: MappingOverrides,
    pub secrets: SourceSecrets,
}

impl ConfiguredSource {
    /// The built-in source keeps its original field rules (job id with
    /// event and step, the `X-Webhook-Event` fallback) unless an admin
    /// overrode one of them.
    pub fn uses_builtin_rules(&self) -> bool {
        self.name == BUILTIN_SOURCE && self.overrides.is_empty()
    }
}

/// Every source by name, swapped whole on a reload.
pub type SourceMap = Arc<HashMap<String, Arc<ConfiguredSource>>>;

#[derive(Debug, Clone, Copy, Default)]
struct Loaded {
    changed_at: Option<i64>,
    next_expiry_us: Option<i64>,
}

/// The map of sources, shared by every request of a node.
#[derive(Clone)]
pub struct SourceRegistry {
    sources: Arc<RwLock<SourceMap>>,
    /// `sources.updated_at` of the loaded map, and when its first
    /// rotated-out secret expires: either moving means a reload.
    loaded: Arc<RwLock<Loaded>>,
    builtin_secrets: SecretRing,
    builtin_mode: SignatureMode,
}

impl SourceRegistry {
    /// Loads the sources; the built-in one takes its secrets and mode from
    /// the environment (`builtin_secrets`, `builtin_mode`).
    pub async fn load(
        store: &Store,
        builtin_secrets: SecretRing,
        builtin_mode: SignatureMode,
    ) -> Result<Self, StoreError> {
        let registry = Self {
            sources: Arc::default(),
            loaded: Arc::default(),
            builtin_secrets,
            builtin_mode,
        };
        registry.refresh(store).await?;
        Ok(registry)
    }

    /// The source named `name`, enabled or not.
    pub fn get(&self, name: &str) -> Option<Arc<ConfiguredSource>> {
        self.snapshot().get(name).cloned()
    }

    /// Every source, by name.
    pub fn snapshot(&self) -> SourceMap {
        self.sources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reloads the sources when they changed since the last load, or when
    /// a loaded secret has expired since.
    pub async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let changed_at = store.sources_changed_at().await?;
        let now_us = unix_micros(OffsetDateTime::now_utc());
        let loaded = *self.loaded.read().unwrap_or_else(|e| e.into_inner());
        let expired = loaded.next_expiry_us.is_some_and(|at| at <= now_us);
        if loaded.changed_at == Some(changed_at) && !expired {
            return Ok(());
        }
        self.reload(store, changed_at).await
    }

    /// Reloads the sources now (after a change made by this node).
    pub async fn reload_now(&self, store: &Store) -> Result<(), StoreError> {
        let changed_at = store.sources_changed_at().await?;
        self.reload(store, changed_at).await
    }

    async fn reload(&self, store: &Store, changed_at: i64) -> Result<(), StoreError> {
        let now_us = unix_micros(OffsetDateTime::now_utc());
        let stored = store.load_sources(now_us).await?;
        let next_expiry_us = stored
            .iter()
            .flat_map(|source| source.secrets.iter())
            .filter_map(|secret| secret.expires_at_us)
            .min();
        let sources: HashMap<_, _> = stored
            .into_iter()
            .filter_map(|source| {
                let name = source.row.name.clone();
                self.configure(source)
                    .map(|configured| (name, Arc::new(configured)))
            })
            .collect();
        *self.sources.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(sources);
        *self.loaded.write().unwrap_or_else(|e| e.into_inner()) = Loaded {
            changed_at: Some(changed_at),
            next_expiry_us,
        };
        Ok(())
    }

    /// A stored source as requests use it; `None` (and an error in the log)
    /// when its row cannot be used, which only a hand-edited row can cause.
    fn configure(&self, source: StoredSource) -> Option<ConfiguredSource> {
        let row = source.row;
        let unusable = |what: &str| {
            tracing::error!(source = %row.name, problem = what, "source skipped: its stored configuration is not usable");
        };
        let Some(preset) = Preset::parse(&row.preset) else {
            unusable("unknown preset");
            return None;
        };
        let Ok(schemes) = SourceScheme::parse_list(&row.schemes) else {
            unusable("unknown scheme");
            return None;
        };
        let Ok(overrides) = serde_json::from_str::<MappingOverrides>(&row.mapping) else {
            unusable("mapping is not valid");
            return None;
        };
        let Ok(mapping) = preset.mapping().with_overrides(&overrides) else {
            unusable("mapping rule is not valid");
            return None;
        };
        let builtin = row.name == BUILTIN_SOURCE;
        let mode = if builtin {
            self.builtin_mode
        } else if row.mode == "flag" {
            SignatureMode::Flag
        } else {
            SignatureMode::Enforce
        };
        let secrets = if builtin {
            SourceSecrets::Ring(self.builtin_secrets.clone())
        } else {
            let secrets: Vec<(WebhookSecret, Option<i64>)> = source
                .secrets
                .iter()
                .filter_map(|stored| {
                    let secret = parse_source_secret(&schemes, &stored.secret).ok()?;
                    Some((
                        secret.with_label(stored.label.clone()),
                        stored.expires_at_us,
                    ))
                })
                .collect();
            SourceSecrets::Stored(secrets.into())
        };
        Some(ConfiguredSource {
            name: row.name,
            preset,
            schemes,
            mode,
            // The built-in source cannot be switched off: today's senders
            // depend on it.
            enabled: builtin || row.enabled,
            token_header: row.token_header,
            mapping,
            overrides,
            secrets,
        })
    }

    /// Checks for changes every [`REFRESH_PERIOD`] until the process ends.
    pub fn spawn_refresher(&self, store: Store) {
        let registry = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(err) = registry.refresh(&store).await {
                    tracing::warn!(error = %err, "could not refresh the sources");
                }
            }
        });
    }
}
