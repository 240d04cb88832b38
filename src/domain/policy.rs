use super::{Participant, ReviewState, User};

/// Approvals a PR needs when neither `required_approvals` nor its route sets a number.
pub const DEFAULT_REQUIRED_APPROVALS: u32 = 2;

/// Where a pull request stands with its reviewers.
///
/// Policy: an author's approval of their own PR does not count (Bitbucket lets authors approve,
/// and some old payloads show it), nor do their own "changes requested". The SQL view
/// `pending_reviews` applies the same rule; tests keep the two in agreement.
///
/// Whether a PR then waits for its reviewers is its turn's call (`TurnCounts::kind`), under the
/// number of approvals its route requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewSummary<'a> {
    /// Everyone but the author whose verdict is approved, in participant order.
    pub approved_by: Vec<&'a User>,
    /// Everyone but the author who asked for changes, in participant order.
    pub changes_requested_by: Vec<&'a User>,
}

impl<'a> ReviewSummary<'a> {
    /// Sorts a PR's participants by verdict, leaving out the author's own.
    pub fn new(author: &User, participants: &'a [Participant]) -> Self {
        let others = participants.iter().filter(|p| p.user.key != author.key);
        let mut approved_by = Vec::new();
        let mut changes_requested_by = Vec::new();
        for p in others {
            match p.state {
                ReviewState::Approved => approved_by.push(&p.user),
                ReviewState::ChangesRequested => changes_requested_by.push(&p.user),
                ReviewState::None => {}
            }
        }
        Self {
            approved_by,
            changes_requested_by,
        }
    }

    /// How many approvals count towards the route's required number.
    pub fn approvals(&self) -> u32 {
        u32::try_from(self.approved_by.len()).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn user(key: &str) -> User {
        User {
            key: key.into(),
            uuid: Some(key.into()),
            account_id: None,
            nickname: None,
            username: None,
            display_name: Some(key.to_uppercase()),
            email: None,
        }
    }

    fn part(key: &str, state: ReviewState) -> Participant {
        Participant {
            user: user(key),
            role: Role::Reviewer,
            state,
            state_on: None,
            reviewed_commit: None,
        }
    }

    #[test]
    fn author_approval_does_not_count() {
        let parts = vec![
            part("author", ReviewState::Approved),
            part("a", ReviewState::Approved),
        ];
        let s = ReviewSummary::new(&user("author"), &parts);
        assert_eq!(s.approvals(), 1);
    }

    #[test]
    fn reaches_required_count() {
        let parts = vec![
            part("a", ReviewState::Approved),
            part("b", ReviewState::Approved),
            part("c", ReviewState::ChangesRequested),
            part("d", ReviewState::None),
        ];
        let s = ReviewSummary::new(&user("author"), &parts);
        assert_eq!(s.approvals(), 2);
        assert_eq!(s.changes_requested_by.len(), 1);
        assert_eq!(s.changes_requested_by[0].key.as_str(), "c");
    }
}
