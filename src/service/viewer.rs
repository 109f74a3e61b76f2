//! Who is asking: the authenticated caller every query is scoped by.

/// A user's role, as new-api stores it in `users.role`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Guest = 0,
    Common = 1,
    Admin = 10,
    Root = 100,
}

impl Role {
    /// The role stored as `value`, or `None` for a value new-api does not define.
    pub fn from_stored(value: i64) -> Option<Role> {
        match value {
            0 => Some(Role::Guest),
            1 => Some(Role::Common),
            10 => Some(Role::Admin),
            100 => Some(Role::Root),
            _ => None,
        }
    }

    /// The value stored in `users.role`.
    pub fn stored(self) -> i64 {
        self as i64
    }

    /// The name the command line and GraphQL use (`guest`, `user`, `admin`, `root`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Guest => "guest",
            Role::Common => "user",
            Role::Admin => "admin",
            Role::Root => "root",
        }
    }

    /// Parses the names the command line accepts: `guest`, `user`, `admin`, `root`.
    pub fn from_name(name: &str) -> Option<Role> {
        match name {
            "guest" => Some(Role::Guest),
            "user" | "common" => Some(Role::Common),
            "admin" => Some(Role::Admin),
            "root" => Some(Role::Root),
            _ => None,
        }
    }
}

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Viewer {
    pub id: i64,
    pub username: String,
    pub role: Role,
}

impl Viewer {
    /// Admins (and root) see every task and the admin-only fields.
    pub fn is_admin(&self) -> bool {
        self.role >= Role::Admin
    }
}
