//! Config layering: a struct's `Default` < an optional TOML file < `FC_*`
//! environment variables. Every bad variable is reported at once.
//!
//! Environment names are the upper-cased dotted path with `__` between
//! sections: `FC_BUS__URL` sets `bus.url`. Values are parsed as TOML scalars
//! when they can be (numbers, booleans), strings otherwise; list settings take
//! comma-separated values.

use serde::de::DeserializeOwned;
use std::path::Path;

/// Why a configuration could not be loaded; lists every problem found.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

/// Load `T` from defaults, the optional file, then environment variables with `prefix` (e.g. `FC_`).
pub fn load<T>(file: Option<&Path>, prefix: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<T, ConfigError>
where
    T: DeserializeOwned + serde::Serialize + Default,
{
    let table = match file {
        Some(path) => Some(read_table(path)?),
        None => None,
    };
    load_table(table, prefix, env)
}

/// Parse a TOML file into a table (for callers that split one file between several configs).
pub fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError(vec![format!("{}: {e}", path.display())]))?;
    text.parse::<toml::Table>().map_err(|e| ConfigError(vec![format!("{}: {e}", path.display())]))
}

/// Like [`load`], with the file already parsed.
pub fn load_table<T>(file: Option<toml::Table>, prefix: &str, env: impl IntoIterator<Item = (String, String)>) -> Result<T, ConfigError>
where
    T: DeserializeOwned + serde::Serialize + Default,
{
    let mut errors = Vec::new();
    let mut tree = toml::Table::try_from(T::default()).map_err(|e| ConfigError(vec![format!("defaults: {e}")]))?;
    if let Some(file_tree) = file {
        merge(&mut tree, file_tree);
    }
    let mut env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(prefix)).collect();
    env.sort();
    for (key, raw) in env {
        let path: Vec<String> = key[prefix.len()..].split("__").map(|s| s.to_ascii_lowercase()).collect();
        if let Err(e) = set_path(&mut tree, &path, &raw) {
            errors.push(format!("{key}: {e}"));
        }
    }
    if !errors.is_empty() {
        return Err(ConfigError(errors));
    }
    toml::Value::Table(tree).try_into().map_err(|e: toml::de::Error| ConfigError(vec![e.to_string()]))
}

fn parse_scalar(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = raw.parse::<f64>()
        && f.is_finite()
    {
        return toml::Value::Float(f);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_string()),
    }
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn set_path(tree: &mut toml::Table, path: &[String], raw: &str) -> Result<(), String> {
    let value = parse_scalar(raw);
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut node = tree;
    for p in parents {
        node = match node.get_mut(p) {
            Some(toml::Value::Table(t)) => t,
            _ => return Err(format!("unknown section `{p}`")),
        };
    }
    match node.get(last) {
        None => Err(format!("unknown setting `{last}`")),
        // Keep strings strings even when they look like numbers ("0123" tokens, ports as text).
        Some(toml::Value::String(_)) => {
            node.insert(last.clone(), toml::Value::String(raw.to_string()));
            Ok(())
        }
        // Lists come as comma-separated text: FC_STORE__SCYLLA__NODES=a:9042,b:9042.
        Some(toml::Value::Array(_)) => {
            let items = raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(parse_scalar).collect();
            node.insert(last.clone(), toml::Value::Array(items));
            Ok(())
        }
        Some(toml::Value::Float(_)) => {
            let v = match value {
                toml::Value::Integer(i) => toml::Value::Float(i as f64),
                v => v,
            };
            node.insert(last.clone(), v);
            Ok(())
        }
        Some(_) => {
            node.insert(last.clone(), value);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        port: u16,
        name: String,
    }
    impl Default for Inner {
        fn default() -> Self {
            Self { port: 1, name: "a".into() }
        }
    }
    #[derive(Debug, Serialize, Deserialize, PartialEq, Default)]
    #[serde(default, deny_unknown_fields)]
    struct Cfg {
        inner: Inner,
        ratio: f64,
        nodes: Vec<String>,
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile_dir();
        let file = dir.join("c.toml");
        std::fs::write(&file, "[inner]\nport = 2\nname = \"file\"\n").unwrap();
        let c: Cfg = load(Some(&file), "FC_", env(&[("FC_INNER__PORT", "3"), ("FC_RATIO", "2"), ("OTHER", "x")])).unwrap();
        assert_eq!(c, Cfg { inner: Inner { port: 3, name: "file".into() }, ratio: 2.0, nodes: vec![] });
        let c: Cfg = load(None, "FC_", env(&[("FC_NODES", "a:1, b:2")])).unwrap();
        assert_eq!(c.nodes, vec!["a:1".to_string(), "b:2".to_string()]);
        let c: Cfg = load(None, "FC_", env(&[("FC_INNER__NAME", "123")])).unwrap();
        assert_eq!(c.inner.name, "123");
    }

    #[test]
    fn every_bad_variable_is_reported() {
        let err = load::<Cfg>(None, "FC_", env(&[("FC_NOPE", "1"), ("FC_INNER__BAD", "2"), ("FC_X__Y", "3")])).unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        let err = load::<Cfg>(None, "FC_", env(&[("FC_INNER__PORT", "notanumber")])).unwrap_err();
        assert!(err.to_string().contains("port") || err.to_string().contains("invalid type"), "{err}");
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("fc-core-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

/// Environment variables of the command-line tools, never configuration.
pub const NON_CONFIG_ENV: &[&str] = &[
    "FC_CONFIG",
    "FC_SERVER",
    "FC_TOKEN",
    "FC_LOG",
    "FC_LOG_FORMAT",
    "FC_SCYLLA_NODES",
    "FC_SCYLLA_KEYSPACE",
    "FC_DATASETS_DIR",
    "FC_NATS_SERVER",
    "FC_PORTAL",
    "FC_API_KEY",
    "FC_ADMIN_SERVER",
    // The operator's admin token, for `admin` and (as `portal.admin_token`) for `up`.
    "FC_ADMIN_TOKEN",
];

/// The sections of the services that share one file and environment:
/// `[portal]` and `FC_PORTAL__*` are the portal's, `[settlement]` and
/// `FC_SETTLEMENT__*` settlement's, `[monitor]` and `FC_MONITOR__*` the
/// monitor's, the rest the top level (ingest's and the
/// platform's, `[bus]` among them).
pub const SERVICE_SECTIONS: [&str; 3] = ["portal", "settlement", "monitor"];

/// One service's part of the file and the environment, for [`load_table`].
#[derive(Debug, Default, Clone)]
pub struct Part {
    /// Its table of the file.
    pub file: Option<toml::Table>,
    /// Its environment variables (still with their full names).
    pub env: Vec<(String, String)>,
}

impl Part {
    /// Loads a config from this part; `prefix` as in [`load_table`].
    pub fn load<T>(self, prefix: &str) -> Result<T, ConfigError>
    where
        T: DeserializeOwned + serde::Serialize + Default,
    {
        load_table(self.file, prefix, self.env)
    }

    /// The sub-table `name` of this part with the `{prefix}{NAME}__` variables,
    /// for a setting shared by several services (`[bus]` for the portal).
    pub fn section(&self, name: &str, prefix: &str) -> Part {
        let file = self.file.as_ref().and_then(|t| t.get(name)).and_then(|v| v.as_table()).cloned();
        let env_prefix = format!("{prefix}{}__", name.to_ascii_uppercase());
        let env = self.env.iter().filter(|(k, _)| k.starts_with(&env_prefix)).cloned().collect();
        Part { file, env }
    }
}

/// Splits the file at `path` (if any) and the environment `env` into the top
/// level and each of [`SERVICE_SECTIONS`]; the tools' own variables
/// ([`NON_CONFIG_ENV`]) are left out.
pub fn split_sections(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<(Part, [Part; 3]), ConfigError> {
    let mut file = path.map(read_table).transpose()?;
    let mut sections: [Part; 3] = Default::default();
    let mut top: Vec<(String, String)> = env.into_iter().filter(|(k, _)| !NON_CONFIG_ENV.contains(&k.as_str())).collect();
    for (i, name) in SERVICE_SECTIONS.iter().enumerate() {
        sections[i].file = file.as_mut().and_then(|t| t.remove(*name)).and_then(|v| match v {
            toml::Value::Table(t) => Some(t),
            _ => None,
        });
        let prefix = format!("FC_{}__", name.to_ascii_uppercase());
        let (mine, rest): (Vec<_>, Vec<_>) = top.into_iter().partition(|(k, _)| k.starts_with(&prefix));
        sections[i].env = mine;
        top = rest;
    }
    Ok((Part { file, env: top }, sections))
}

/// The configuration file a service binary was given: `--config PATH` (or
/// `--config=PATH`) among `args`, else `FC_CONFIG`.
pub fn path_from_args(args: impl IntoIterator<Item = String>) -> Option<std::path::PathBuf> {
    arg_value(args, "--config").map(Into::into).or_else(|| std::env::var_os("FC_CONFIG").map(Into::into))
}

/// The value of `flag` among `args`: `flag VALUE` or `flag=VALUE`.
pub fn arg_value(args: impl IntoIterator<Item = String>, flag: &str) -> Option<String> {
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        if a == flag {
            return args.next();
        }
        if let Some(v) = a.strip_prefix(flag).and_then(|v| v.strip_prefix('=')) {
            return Some(v.to_string());
        }
    }
    None
}
