//! Who may do what to which repository (`auth.access`, Berth's own, in the
//! spirit of zot's access control): an ordered list of repository globs,
//! the first that matches a repository deciding for it, each granting
//! actions to users, to groups of users, and to anonymous callers.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::glob;

/// What a request does to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Pull,
    Push,
    Delete,
}

impl Action {
    /// The verb, for messages: `alice may not push team/app`.
    pub fn verb(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
}

/// `auth.access`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Group name to its users.
    pub groups: BTreeMap<String, Vec<String>>,
    /// In order: the first whose `match` matches a repository decides.
    pub repositories: Vec<RepositoryRule>,
}

/// What one repository glob grants.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryRule {
    /// A glob over repository names: `*` within one path segment, `**` any
    /// number of segments (`library/**`, `team-*/app`, `**`).
    #[serde(rename = "match")]
    pub pattern: String,
    /// What callers without credentials may do.
    #[serde(default)]
    pub anonymous: Vec<Action>,
    #[serde(default)]
    pub grants: Vec<Grant>,
}

/// Actions for some users and groups.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    pub actions: Vec<Action>,
}

impl AccessConfig {
    /// What is wrong with the rules, naming the field: a group a grant
    /// names that is not defined, an empty pattern.
    pub fn check(&self) -> Result<(), (String, String)> {
        for (index, rule) in self.repositories.iter().enumerate() {
            let field = format!("auth.access.repositories[{index}]");
            if rule.pattern.is_empty() || rule.pattern.split('/').any(str::is_empty) {
                return Err((
                    format!("{field}.match"),
                    format!("`{}` is not a repository glob like `library/**`", rule.pattern),
                ));
            }
            for (g, grant) in rule.grants.iter().enumerate() {
                if let Some(group) = grant.groups.iter().find(|g| !self.groups.contains_key(*g)) {
                    return Err((
                        format!("{field}.grants[{g}].groups"),
                        format!("the group `{group}` is not defined in auth.access.groups"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The actions `user` (`None`: anonymous) may take on `repository`.
    pub fn allowed(&self, user: Option<&str>, repository: &str) -> BTreeSet<Action> {
        let Some(rule) = self.repositories.iter().find(|r| glob::matches(&r.pattern, repository)) else {
            return BTreeSet::new();
        };
        let mut actions: BTreeSet<Action> = rule.anonymous.iter().copied().collect();
        if let Some(user) = user {
            let member = |group: &String| {
                self.groups
                    .get(group)
                    .is_some_and(|users| users.iter().any(|u| u == user))
            };
            for grant in &rule.grants {
                if grant.users.iter().any(|u| u == user) || grant.groups.iter().any(member) {
                    actions.extend(grant.actions.iter().copied());
                }
            }
        }
        actions
    }

    /// Whether anonymous callers may do anything anywhere.
    pub fn admits_anonymous(&self) -> bool {
        self.repositories.iter().any(|rule| !rule.anonymous.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn rules() -> AccessConfig {
        serde_norway::from_str(
            "groups: {ci: [robot]}\n\
             repositories:\n\
             - match: library/**\n  anonymous: [pull]\n  grants: [{users: [alice], actions: [push, delete]}]\n\
             - match: team/**\n  grants: [{groups: [ci], actions: [pull, push]}, {users: [alice], actions: [pull]}]\n",
        )
        .unwrap()
    }

    #[test]
    fn the_first_matching_glob_grants_to_users_groups_and_anonymous() {
        let access = rules();
        access.check().unwrap();
        let set = |actions: &[Action]| actions.iter().copied().collect::<BTreeSet<_>>();
        assert_eq!(access.allowed(None, "library/alpine"), set(&[Pull]));
        assert_eq!(
            access.allowed(Some("alice"), "library/alpine"),
            set(&[Pull, Push, Delete])
        );
        assert_eq!(access.allowed(Some("robot"), "team/app"), set(&[Pull, Push]));
        assert_eq!(access.allowed(Some("alice"), "team/app"), set(&[Pull]));
        assert_eq!(access.allowed(None, "team/app"), set(&[]));
        assert_eq!(access.allowed(Some("alice"), "elsewhere"), set(&[]), "no glob, nothing");
        assert!(access.admits_anonymous());
    }

    #[test]
    fn unknown_actions_and_groups_are_refused() {
        let err = serde_norway::from_str::<AccessConfig>("repositories: [{match: '**', anonymous: [read]}]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("read") && err.contains("pull"), "{err}");
        let mut access = rules();
        access.groups.clear();
        let (field, why) = access.check().unwrap_err();
        assert_eq!(field, "auth.access.repositories[1].grants[0].groups");
        assert!(why.contains("`ci`"), "{why}");
    }
}
