//! Small builders for domain values: a PR is open, by `alice`, on a 12-digit source commit, with
//! no one attached, until a test says otherwise (the fields are public).

use pr_reminder::domain::{
    BuildState, Change, CommitStatus, Delivery, Flavour, Outcome, Participant, PrState,
    PullRequest, Repository, RepositoryKey, RepositoryUpdate, ReviewState, Role, Timestamp, User,
};

/// `2026-11-20T09:{minute}:00Z`: the tests' clock, one minute a step.
pub fn at(minute: u32) -> Timestamp {
    Timestamp::parse(&format!("2026-11-20T09:{minute:02}:00Z")).unwrap()
}

/// A Cloud repository: keyed by its uuid, called `full_name` (for now).
pub fn repo(uuid: &str, full_name: &str) -> Repository {
    Repository {
        key: RepositoryKey::cloud(Some(uuid), full_name),
        full_name: full_name.into(),
        uuid: Some(uuid.into()),
        url: Some(format!("https://bitbucket.org/{full_name}")),
    }
}

pub fn user(key: &str) -> User {
    User {
        key: key.into(),
        uuid: Some(key.into()),
        account_id: None,
        nickname: Some(key.into()),
        username: None,
        display_name: Some(key.to_uppercase()),
        email: None,
    }
}

pub fn reviewer(key: &str, state: ReviewState) -> Participant {
    Participant {
        user: user(key),
        role: Role::Reviewer,
        state,
        state_on: None,
        reviewed_commit: None,
    }
}

/// The source commit of `pr` (12 hex digits, as Cloud PR payloads give it).
pub const SOURCE_COMMIT: &str = "9b2c4e6f8a10";

/// PR `number` of `repository` as a snapshot taken at `updated_on`.
pub fn pr(repository: &Repository, number: i64, updated_on: Timestamp) -> PullRequest {
    PullRequest {
        repository: repository.clone(),
        number,
        title: format!("Change {number}"),
        author: user("alice"),
        source_branch: Some("feature".into()),
        source_commit: Some(SOURCE_COMMIT.into()),
        destination_branch: Some("main".into()),
        state: PrState::Open,
        open_tasks: None,
        draft: false,
        created_on: at(0),
        activity_on: updated_on.clone(),
        updated_on,
        url: Some(format!(
            "https://bitbucket.org/{}/pull-requests/{number}",
            repository.full_name
        )),
        participants: Vec::new(),
    }
}

/// A build result on `commit_hash` (40 hex digits, as Cloud status payloads give it).
pub fn status(
    repository: &Repository,
    commit_hash: &str,
    state: BuildState,
    updated_on: Timestamp,
) -> CommitStatus {
    CommitStatus {
        repository: repository.clone(),
        commit_hash: commit_hash.into(),
        key: "ci".into(),
        state,
        name: Some("Unit tests".into()),
        url: Some("https://ci.example/1".into()),
        updated_on,
    }
}

pub fn pr_change(pr: &PullRequest) -> Change {
    Change::PullRequest(Box::new(pr.clone()))
}

pub fn status_change(status: &CommitStatus) -> Change {
    Change::CommitStatus(Box::new(status.clone()))
}

pub fn rename_change(repository: &Repository, updated_on: Timestamp) -> Change {
    Change::Repository(Box::new(RepositoryUpdate {
        repository: repository.clone(),
        updated_on,
    }))
}

fn delivery(request_id: &str, event_key: &str, outcome: Outcome) -> Delivery {
    Delivery {
        flavour: Flavour::Cloud,
        request_id: Some(request_id.into()),
        event_key: Some(event_key.into()),
        attempt: Some(1),
        received_at: at(59),
        outcome,
    }
}

/// A delivery that was understood and carries `change`.
pub fn processed(request_id: &str, change: Change) -> Delivery {
    let key = match &change {
        Change::PullRequest(_) => "pullrequest:updated",
        Change::CommitStatus(_) => "repo:commit_status_updated",
        Change::Repository(_) => "repo:updated",
    };
    delivery(request_id, key, Outcome::Processed(change))
}

/// A delivery that was refused (bad signature, malformed, ...).
pub fn rejected(request_id: &str) -> Delivery {
    let reason = "pullrequest: missing field `author`".to_owned();
    delivery(
        request_id,
        "pullrequest:updated",
        Outcome::Rejected { reason },
    )
}

/// An authentic delivery of no interest.
pub fn ignored(request_id: &str) -> Delivery {
    let reason = "event `repo:push` is not one pr-reminder acts on".to_owned();
    delivery(request_id, "repo:push", Outcome::Ignored { reason })
}

/// A webhook delivery of a PR snapshot (announced).
pub fn delivered(request_id: &str, pr: &PullRequest) -> pr_reminder::domain::Submission {
    pr_reminder::domain::Submission::delivery(processed(request_id, pr_change(pr)))
}
