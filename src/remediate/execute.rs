//! Carrying out a plan: re-read, write `planned`, call, record the outcome.

use crate::clock::Clock;
use serde::Serialize;

use super::{Plan, PlannedAction};
use crate::admin_api::models::ApiKeyUpdate;
use crate::admin_api::{AdminClient, ApiError};
use crate::org::ApiKeyStatus;
use crate::org::OrgState;
use crate::policy::Action;
use crate::policy::{ActionRecord, ActionStatus};
use crate::store::{ActionOutcome, NewAction, Store};

/// What happened to one eligible action.
#[derive(Debug, Clone, Serialize)]
pub struct Executed {
    pub action: Action,
    pub subject_id: String,
    pub subject: String,
    pub status: ActionStatus,
    pub reason: Option<String>,
}

/// What [`execute`] did: each eligible action's fate, and why the run stopped early, if it did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Execution {
    pub executed: Vec<Executed>,
    /// Set when the Admin API refused the key (401/403) mid-run: the actions after it were
    /// recorded skipped, not attempted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
}

/// The reason recorded for the actions not attempted after the key was refused.
pub const KEY_REFUSED: &str = "not attempted: the Admin API refused the key earlier in this run";

/// The object as it is now, read right before the call.
enum Current {
    Gone,
    /// Changed since the snapshot: the text says how.
    Changed(String),
    /// As the snapshot saw it; the JSON is kept in the audit trail.
    Same(String),
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn is_not_found(error: &ApiError) -> bool {
    error.status() == Some(404)
}

/// 401 or 403: the key is revoked or lacks the permission, for this call and every later one.
fn is_refused(status: Option<u16>) -> bool {
    matches!(status, Some(401 | 403))
}

/// Splits a workspace membership's subject id `wrkspc_…/user_…`.
fn membership_ids(planned: &PlannedAction) -> Option<(&str, &str)> {
    match (&planned.workspace_id, &planned.user_id) {
        (Some(w), Some(u)) => Some((w, u)),
        _ => planned.subject_id.split_once('/'),
    }
}

async fn read_current(
    client: &AdminClient,
    state: &OrgState,
    planned: &PlannedAction,
) -> Result<Current, ApiError> {
    let gone = |r: Result<Current, ApiError>| match r {
        Err(e) if is_not_found(&e) => Ok(Current::Gone),
        other => other,
    };
    match planned.action {
        Action::DeleteInvite => gone(
            async {
                let now = client.get_invite(&planned.subject_id).await?;
                let then = state.invites.iter().find(|i| i.id == planned.subject_id);
                Ok(match then {
                    Some(then) if then.status != now.status => Current::Changed(format!(
                        "its status is now {} (was {})",
                        now.status, then.status
                    )),
                    Some(then) if then.email != now.email => {
                        Current::Changed("its email changed".to_owned())
                    }
                    Some(_) => Current::Same(json(&now)),
                    None => Current::Changed("not in the snapshot".to_owned()),
                })
            }
            .await,
        ),
        Action::DeactivateKey => gone(
            async {
                let now = client.get_api_key(&planned.subject_id).await?;
                let then = state.api_keys.iter().find(|k| k.id == planned.subject_id);
                Ok(match then {
                    Some(then) if then.status != now.status => Current::Changed(format!(
                        "its status is now {} (was {})",
                        now.status, then.status
                    )),
                    Some(then)
                        if then.name != now.name || then.workspace_id != now.workspace_id =>
                    {
                        Current::Changed("it was renamed or moved".to_owned())
                    }
                    Some(then) if then.owner() != now.owner() => {
                        Current::Changed("its owner changed".to_owned())
                    }
                    Some(_) => Current::Same(json(&now)),
                    None => Current::Changed("not in the snapshot".to_owned()),
                })
            }
            .await,
        ),
        Action::RemoveMember => gone(
            async {
                let now = client.get_user(&planned.subject_id).await?;
                let then = state.members.iter().find(|m| m.id == planned.subject_id);
                Ok(match then {
                    Some(then) if then.role != now.role => Current::Changed(format!(
                        "their role is now {} (was {})",
                        now.role, then.role
                    )),
                    Some(then) if then.email != now.email => {
                        Current::Changed("their email changed".to_owned())
                    }
                    Some(_) if now.role.is_admin() => {
                        Current::Changed("they are an admin".to_owned())
                    }
                    Some(_) => Current::Same(json(&now)),
                    None => Current::Changed("not in the snapshot".to_owned()),
                })
            }
            .await,
        ),
        Action::RemoveWorkspaceMember => gone(
            async {
                let Some((workspace, user)) = membership_ids(planned) else {
                    return Ok(Current::Changed("malformed membership id".to_owned()));
                };
                let now = client.get_workspace_member(workspace, user).await?;
                let then = state
                    .workspace_members
                    .iter()
                    .find(|m| m.workspace_id == workspace && m.user_id == user);
                Ok(match then {
                    Some(then) if then.workspace_role != now.workspace_role => {
                        Current::Changed(format!(
                            "their workspace role is now {} (was {})",
                            now.workspace_role, then.workspace_role
                        ))
                    }
                    Some(_) => Current::Same(json(&now)),
                    None => Current::Changed("not in the snapshot".to_owned()),
                })
            }
            .await,
        ),
        Action::Review | Action::AcceptBaseline => Ok(Current::Changed("report only".to_owned())),
    }
}

/// Makes the call. A 404 on a delete means someone else already did it.
async fn call(client: &AdminClient, planned: &PlannedAction) -> ActionOutcome {
    let result = match planned.action {
        Action::DeleteInvite => client
            .delete_invite(&planned.subject_id)
            .await
            .map(|a| (a.status, a.request_id)),
        Action::DeactivateKey => {
            let update = ApiKeyUpdate {
                name: None,
                status: Some(ApiKeyStatus::Inactive),
            };
            client
                .update_api_key(&planned.subject_id, &update)
                .await
                .map(|a| (a.status, a.request_id))
        }
        Action::RemoveMember => client
            .remove_user(&planned.subject_id)
            .await
            .map(|a| (a.status, a.request_id)),
        Action::RemoveWorkspaceMember => match membership_ids(planned) {
            Some((workspace, user)) => client
                .remove_workspace_member(workspace, user)
                .await
                .map(|a| (a.status, a.request_id)),
            None => {
                return ActionOutcome {
                    status: ActionStatus::Failed,
                    reason: Some("malformed membership id".to_owned()),
                    http_status: None,
                    request_id: None,
                }
            }
        },
        Action::Review | Action::AcceptBaseline => {
            return ActionOutcome {
                status: ActionStatus::Skipped,
                reason: Some("report only".to_owned()),
                http_status: None,
                request_id: None,
            }
        }
    };
    match result {
        Ok((status, request_id)) => ActionOutcome {
            status: ActionStatus::Succeeded,
            reason: None,
            http_status: Some(status),
            request_id,
        },
        Err(error) if is_not_found(&error) && planned.action != Action::DeactivateKey => {
            ActionOutcome {
                status: ActionStatus::Succeeded,
                reason: Some("already gone (404)".to_owned()),
                http_status: Some(404),
                request_id: error.request_id().map(str::to_owned),
            }
        }
        Err(error) => ActionOutcome {
            status: ActionStatus::Failed,
            reason: Some(error.to_string()),
            http_status: error.status(),
            request_id: error.request_id().map(str::to_owned),
        },
    }
}

/// Carries out every eligible action of `plan`, one at a time, leaving an audit trail row for
/// each. A failed call does not stop the others, but a refused key (401/403) does: every later
/// action is recorded skipped ([`KEY_REFUSED`]) without a request.
pub async fn execute(
    client: &AdminClient,
    store: &Store,
    state: &OrgState,
    plan: &Plan,
    clock: &dyn Clock,
) -> anyhow::Result<Execution> {
    let mut out = Execution::default();
    for planned in plan.eligible() {
        let mut new = NewAction {
            run_id: plan.run_id,
            action: planned.action,
            subject_kind: planned.subject_kind,
            subject_id: &planned.subject_id,
            subject: &planned.subject,
            finding: &planned.finding,
            before: None,
        };
        let (status, reason) = if out.stopped.is_some() {
            store.action_skipped(&new, KEY_REFUSED, clock.now())?;
            (ActionStatus::Skipped, Some(KEY_REFUSED.to_owned()))
        } else {
            match read_current(client, state, planned).await {
                Err(error) => {
                    // Not carried out because the API failed: a failure, not a legitimate skip.
                    let reason = format!("could not read it again before acting: {error}");
                    if is_refused(error.status()) {
                        out.stopped = Some(format!("the Admin API refused the key: {error}"));
                    }
                    let id = store.action_planned(&new, clock.now())?;
                    let outcome = ActionOutcome {
                        status: ActionStatus::Failed,
                        reason: Some(reason.clone()),
                        http_status: error.status(),
                        request_id: error.request_id().map(str::to_owned),
                    };
                    store.action_finished(id, &outcome, clock.now())?;
                    tracing::warn!(
                        action = planned.action.as_str(),
                        subject = %planned.subject_id,
                        "action failed: {reason}"
                    );
                    (ActionStatus::Failed, Some(reason))
                }
                Ok(Current::Gone) => {
                    let reason = "recheck: it no longer exists".to_owned();
                    store.action_skipped(&new, &reason, clock.now())?;
                    (ActionStatus::Skipped, Some(reason))
                }
                Ok(Current::Changed(how)) => {
                    let reason = format!("recheck: changed since the snapshot: {how}");
                    store.action_skipped(&new, &reason, clock.now())?;
                    (ActionStatus::Skipped, Some(reason))
                }
                Ok(Current::Same(before)) => {
                    new.before = Some(&before);
                    let id = store.action_planned(&new, clock.now())?;
                    let outcome = call(client, planned).await;
                    store.action_finished(id, &outcome, clock.now())?;
                    match outcome.status {
                        ActionStatus::Failed => tracing::warn!(
                            action = planned.action.as_str(),
                            subject = %planned.subject_id,
                            "action failed: {}",
                            outcome.reason.as_deref().unwrap_or_default()
                        ),
                        _ => tracing::info!(
                            action = planned.action.as_str(),
                            subject = %planned.subject_id,
                            "action {}",
                            outcome.status.as_str()
                        ),
                    }
                    if is_refused(outcome.http_status) {
                        out.stopped = Some(format!(
                            "the Admin API refused the key: {}",
                            outcome.reason.as_deref().unwrap_or_default()
                        ));
                    }
                    (outcome.status, outcome.reason)
                }
            }
        };
        if let Some(why) = out
            .stopped
            .as_deref()
            .filter(|_| reason.as_deref() != Some(KEY_REFUSED))
        {
            tracing::error!("remediation stopped: {why}; the remaining actions are not attempted");
        }
        out.executed.push(Executed {
            action: planned.action,
            subject_id: planned.subject_id.clone(),
            subject: planned.subject.clone(),
            status,
            reason,
        });
    }
    Ok(out)
}

/// Settles actions a stopped process left `planned`, by reading each object: done if the
/// change is visible (gone, or inactive for a key), else failed as interrupted (the finding, if
/// it still holds, is planned again).
pub async fn reconcile(
    client: &AdminClient,
    store: &Store,
    clock: &dyn Clock,
) -> anyhow::Result<Vec<ActionRecord>> {
    let mut settled = Vec::new();
    for record in store.planned_actions()? {
        let read = match record.action {
            Action::DeleteInvite => client.get_invite(&record.subject_id).await.map(|_| false),
            Action::DeactivateKey => client
                .get_api_key(&record.subject_id)
                .await
                .map(|k| k.status == ApiKeyStatus::Inactive),
            Action::RemoveMember => client.get_user(&record.subject_id).await.map(|_| false),
            Action::RemoveWorkspaceMember => match record.subject_id.split_once('/') {
                Some((w, u)) => client.get_workspace_member(w, u).await.map(|_| false),
                None => Ok(false),
            },
            Action::Review | Action::AcceptBaseline => Ok(false),
        };
        let done = match read {
            Ok(done) => done,
            Err(error) if is_not_found(&error) => record.action != Action::DeactivateKey,
            Err(error) => {
                tracing::warn!(
                    action_id = record.id,
                    "cannot reconcile an interrupted action yet: {error}"
                );
                // A refused key refuses every later read too: no point in trying them.
                if is_refused(error.status()) {
                    break;
                }
                continue;
            }
        };
        let outcome = if done {
            ActionOutcome {
                status: ActionStatus::Succeeded,
                reason: Some("reconciled after an interruption: the change is in place".to_owned()),
                http_status: None,
                request_id: None,
            }
        } else {
            ActionOutcome {
                status: ActionStatus::Failed,
                reason: Some(
                    "interrupted before the call took effect; planned again if still needed"
                        .to_owned(),
                ),
                http_status: None,
                request_id: None,
            }
        };
        store.action_finished(record.id, &outcome, clock.now())?;
        tracing::warn!(
            action_id = record.id,
            action = record.action.as_str(),
            subject = %record.subject_id,
            "reconciled an interrupted action: {}",
            outcome.status.as_str()
        );
        let mut record = record;
        record.status = outcome.status;
        record.reason = outcome.reason;
        settled.push(record);
    }
    Ok(settled)
}
