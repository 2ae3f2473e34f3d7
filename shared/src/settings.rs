//! Settings are read once at cold start through a lookup (the process environment, or a map
//! in tests); every problem is one clear [`ConfigError`] naming the variable.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// A lookup that treats an empty or blank value as unset, as a template parameter left empty
/// arrives.
pub fn non_blank(lookup: impl Fn(&str) -> Option<String>) -> impl Fn(&str) -> Option<String> {
    move |name| lookup(name).filter(|v| !v.trim().is_empty())
}

/// The whole number `name` holds, if set, within `min..=max`.
pub fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    min: u64,
    max: u64,
) -> Result<Option<u64>, ConfigError> {
    get(name)
        .map(|raw| match raw.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ConfigError(format!(
                "{name} is {raw:?}; it must be a whole number from {min} to {max}"
            ))),
        })
        .transpose()
}
