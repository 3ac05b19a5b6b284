//! placeholder until the ScyllaDB backend lands (being written now)
use serde::{Deserialize, Serialize};
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ScyllaConfig { pub nodes: Vec<String> }
pub struct ScyllaStore;
impl ScyllaStore {
    pub async fn connect(_c: &ScyllaConfig) -> Result<crate::embedded::EmbeddedStore, crate::StoreError> { Err(crate::StoreError::Backend("not yet".into())) }
}
