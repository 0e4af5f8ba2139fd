//! The Users tab: every account with its role and status, inviting a user
//! (their generated password is shown once), changing roles, disabling and
//! enabling accounts. Viewers get a plain explanation instead.

use leptos::html;
use leptos::prelude::*;
use time::format_description::well_known::Rfc3339;

use super::{InviteUser, SetUserDisabled, SetUserRole, UserSummary, list_users};
use crate::auth::current_user;
use crate::browser;
use crate::error::AppError;

/// The outcome of the last change to a row, announced to screen readers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Feedback {
    message: String,
    failed: bool,
}

impl Feedback {
    fn of(result: Result<String, AppError>, what: &str) -> Self {
        match result {
            Ok(message) => Self {
                message,
                failed: false,
            },
            Err(err) => Self {
                message: format!("Could not {what}: {err}"),
                failed: true,
            },
        }
    }
}

fn role_label(role: &str) -> &'static str {
    if role == "admin" { "Admin" } else { "Viewer" }
}

#[component]
pub fn UsersPage() -> impl IntoView {
    let invite = ServerAction::<InviteUser>::new();
    let set_role = ServerAction::<SetUserRole>::new();
    let set_disabled = ServerAction::<SetUserDisabled>::new();
    let users = Resource::new(
        move || {
            (
                invite.version().get(),
                set_role.version().get(),
                set_disabled.version().get(),
            )
        },
        |_| list_users(),
    );
    let me = Resource::new(|| (), |_| current_user());

    let feedback = RwSignal::new(None::<Feedback>);
    Effect::new(move |_| {
        if let Some(result) = set_role.value().get() {
            let result = result.map(|user| {
                let role = if user.role == "admin" {
                    "an admin"
                } else {
                    "a viewer"
                };
                format!("{} is now {role}.", user.email)
            });
            feedback.set(Some(Feedback::of(result, "change the role")));
        }
    });
    Effect::new(move |_| {
        if let Some(result) = set_disabled.value().get() {
            let result = result.map(|user| {
                if user.disabled {
                    format!("{} is disabled; their sessions have ended.", user.email)
                } else {
                    format!("{} is enabled and can sign in again.", user.email)
                }
            });
            feedback.set(Some(Feedback::of(result, "change the account")));
        }
    });

    view! {
        <div class="page-head">
            <div>
                <h1 class="page-title">"Users"</h1>
                <p class="muted">"Admins manage everything; viewers read callbacks."</p>
            </div>
        </div>
        <Transition fallback=|| view! { <p class="muted">"Loading users…"</p> }>
            {move || {
                let me = me.get().and_then(Result::ok).map(|user| user.email);
                users.get().map(|result| match result {
                    Ok(users) => view! {
                        <InviteForm invite />
                        <p
                            class="users-feedback"
                            class:error-text=move || feedback.with(|f| f.as_ref().is_some_and(|f| f.failed))
                            role="status"
                        >
                            {move || feedback.with(|f| f.as_ref().map(|f| f.message.clone()))}
                        </p>
                        <UsersTable users me set_role set_disabled />
                    }
                    .into_any(),
                    Err(AppError::Forbidden(_)) => view! {
                        <div class="error-state" role="alert">
                            <p>"Only admins can manage users."</p>
                            <p class="muted">"Ask an admin if you need to invite someone or change a role."</p>
                        </div>
                    }
                    .into_any(),
                    Err(err) => view! {
                        <div class="error-state" role="alert">
                            <p>{format!("Could not load the users: {err}")}</p>
                            <p>"Reload the page to try again; if it keeps failing, the server log says why."</p>
                        </div>
                    }
                    .into_any(),
                })
            }}
        </Transition>
    }
}

#[component]
fn InviteForm(invite: ServerAction<InviteUser>) -> impl IntoView {
    let email_input = NodeRef::<html::Input>::new();
    // A successful invite empties the field for the next one.
    Effect::new(move |_| {
        if let Some(Ok(_)) = invite.value().get()
            && let Some(input) = email_input.get_untracked()
        {
            input.set_value("");
        }
    });
    view! {
        <section class="invite" aria-labelledby="invite-title">
            <h2 id="invite-title" class="section-title">"Invite a user"</h2>
            <ActionForm action=invite attr:class="invite-form">
                <label class="field wide">
                    <span>"Email"</span>
                    <input
                        type="email"
                        name="email"
                        required
                        autocomplete="off"
                        placeholder="name@example.com"
                        node_ref=email_input
                    />
                </label>
                <label class="field">
                    <span>"Role"</span>
                    <select name="role">
                        <option value="viewer" selected>"Viewer"</option>
                        <option value="admin">"Admin"</option>
                    </select>
                </label>
                <button type="submit" class="button primary" disabled=move || invite.pending().get()>
                    "Invite"
                </button>
            </ActionForm>
            {move || {
                invite.value().get().map(|result| match result {
                    Ok(invitation) => {
                        let password = invitation.password.clone();
                        view! {
                            <div class="invite-result" role="status">
                                <p>
                                    "Account created for " <strong>{invitation.email}</strong> " ("
                                    {role_label(&invitation.role)} "). Their password, shown only this once:"
                                </p>
                                <p class="invite-password">
                                    <code data-testid="invite-password">{invitation.password}</code>
                                    <button
                                        type="button"
                                        class="button small"
                                        on:click=move |_| browser::copy_text(&password)
                                    >
                                        "Copy"
                                    </button>
                                </p>
                                <p class="muted">
                                    "Pass it on securely, for example through a password manager or in person, "
                                    "not in plain email or chat. It cannot be shown again."
                                </p>
                                <button type="button" class="button" on:click=move |_| invite.value().set(None)>
                                    "Done"
                                </button>
                            </div>
                        }
                        .into_any()
                    }
                    Err(err) => view! {
                        <p class="form-error" role="alert">{format!("Could not invite: {err}")}</p>
                    }
                    .into_any(),
                })
            }}
        </section>
    }
}

#[component]
fn UsersTable(
    users: Vec<UserSummary>,
    me: Option<String>,
    set_role: ServerAction<SetUserRole>,
    set_disabled: ServerAction<SetUserDisabled>,
) -> impl IntoView {
    view! {
        <div class="table-scroll">
            <table class="history-table users-table">
                <caption class="visually-hidden">"Users"</caption>
                <thead>
                    <tr>
                        <th scope="col">"Email"</th>
                        <th scope="col">"Role"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Last sign-in"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {users
                        .into_iter()
                        .map(|user| {
                            let is_me = me.as_deref() == Some(user.email.as_str());
                            view! { <UserRow user is_me set_role set_disabled /> }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}

#[component]
fn UserRow(
    user: UserSummary,
    is_me: bool,
    set_role: ServerAction<SetUserRole>,
    set_disabled: ServerAction<SetUserDisabled>,
) -> impl IntoView {
    let busy = move || set_role.pending().get() || set_disabled.pending().get();
    // The server renders UTC; the browser then shows its own local time.
    let last_login = user.last_login_at.map(|at| {
        let machine = at.format(&Rfc3339).unwrap_or_else(|_| at.to_string());
        let shown = RwSignal::new(machine.clone());
        Effect::new(move |_| shown.set(browser::local_time(at)));
        (machine, shown)
    });
    let email = user.email.clone();
    let change_role = move |ev: leptos::ev::Event| {
        set_role.dispatch(SetUserRole {
            email: email.clone(),
            role: event_target_value(&ev),
        });
    };
    let email = user.email.clone();
    let disabled = user.disabled;
    let toggle = move |_| {
        set_disabled.dispatch(SetUserDisabled {
            email: email.clone(),
            disabled: !disabled,
        });
    };
    let own_note = is_me.then_some("You cannot change your own account here");
    view! {
        <tr class:disabled-user=user.disabled>
            <td>
                {user.email.clone()}
                {is_me.then(|| view! { <span class="muted">" (you)"</span> })}
            </td>
            <td>
                // The property, unlike the options' `selected`, puts a refused
                // change back to the stored role when the list is reloaded.
                <select
                    class="role-select"
                    prop:value=user.role.clone()
                    aria-label=format!("Role of {}", user.email)
                    title=own_note
                    disabled=move || is_me || busy()
                    on:change=change_role
                >
                    <option value="admin" selected=user.role == "admin">"Admin"</option>
                    <option value="viewer" selected=user.role == "viewer">"Viewer"</option>
                </select>
            </td>
            <td>
                {if user.disabled {
                    view! { <span class="badge danger">"disabled"</span> }.into_any()
                } else {
                    view! { <span class="badge ok">"active"</span> }.into_any()
                }}
            </td>
            <td class="nowrap">
                {match last_login {
                    Some((machine, shown)) => view! { <time datetime=machine>{move || shown.get()}</time> }.into_any(),
                    None => view! { <span class="muted">"never"</span> }.into_any(),
                }}
            </td>
            <td>
                <button
                    type="button"
                    class="button small"
                    aria-label=format!("{} {}", if disabled { "Enable" } else { "Disable" }, user.email)
                    title=own_note
                    disabled=move || is_me || busy()
                    on:click=toggle
                >
                    {if disabled { "Enable" } else { "Disable" }}
                </button>
            </td>
        </tr>
    }
}
