//! Who may do what. Authentication (the `auth` layer) establishes a [`Principal`]; a route
//! that changes an endpoint or shows its secrets must turn it into a [`Writer`], which only
//! owners and admins can, and every such call of the endpoints repository takes the `Writer`.
//! So a write route cannot be written without asking for one.

use crate::domain::ids::{KeyId, TenantId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "owner" => Some(Self::Owner),
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            _ => None,
        }
    }

    /// Owners and admins create, rotate, reveal and delete; members only read.
    pub fn can_write(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    pub key_id: KeyId,
    pub role: Role,
}

/// The caller may only read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this role may only read")]
pub struct ReadOnly;

impl Principal {
    /// The right to change this tenant's endpoints and see their secrets.
    pub fn writer(&self) -> Result<Writer, ReadOnly> {
        if self.role.can_write() {
            Ok(Writer(self.clone()))
        } else {
            Err(ReadOnly)
        }
    }
}

/// An owner or admin of one tenant: the only way to name a tenant to a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Writer(Principal);

impl Writer {
    pub fn tenant(&self) -> &TenantId {
        &self.0.tenant
    }
}
