//! `kamshub bootstrap`, `kamshub tenant …`, `kamshub user …`.

use super::output::{Format, print};
use super::{CliError, collect, parse_with, secret_arg};
use crate::app::App;
use crate::domain::{Actor, Email, Role, TenantId, TenantName};
use crate::service::access::Caller;
use crate::service::onboarding;
use clap::{Args, Subcommand};

/// `kamshub bootstrap`
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// The platform admin's email (sign-in name).
    #[arg(long, value_parser = parse_with(Email::parse))]
    pub email: Email,
    /// A permanent password (`-` reads it from stdin). Without it a temporary password is
    /// generated, shown once, and must be replaced at first sign-in.
    #[arg(long)]
    pub password: Option<String>,
}

/// `kamshub tenant …`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant and its first tenant admin (temporary password, shown once).
    Create {
        /// The company's name; unique ignoring case.
        #[arg(long, value_parser = parse_with(TenantName::parse))]
        name: TenantName,
        /// Email of the tenant's first admin.
        #[arg(long, value_parser = parse_with(Email::parse))]
        admin_email: Email,
    },
    /// List every tenant.
    List,
    /// Show one tenant.
    Show {
        /// Tenant id.
        #[arg(value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
    },
}

/// `kamshub user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Invite a user into a tenant (temporary password, shown once).
    Invite {
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
        /// The user's email (sign-in name).
        #[arg(long, value_parser = parse_with(Email::parse))]
        email: Email,
        /// platform_admin, tenant_admin or tenant_manager.
        #[arg(long, value_parser = parse_with(|s: &str| s.parse::<Role>()))]
        role: Role,
    },
    /// List the users of a tenant.
    List {
        /// Tenant id.
        #[arg(long, value_parser = parse_with(TenantId::parse))]
        tenant: TenantId,
    },
}

pub(crate) async fn bootstrap(app: &App, format: Format, args: BootstrapArgs) -> Result<(), CliError> {
    let password = args.password.as_deref().map(|p| secret_arg(p, "password")).transpose()?;
    let view = onboarding::bootstrap(app, &Actor::cli_operator(), args.email, password).await?;
    note_temporary_password(format, view.temporary_password.is_some());
    print(format, &view)
}

pub(crate) async fn tenant(app: &App, format: Format, command: TenantCommand) -> Result<(), CliError> {
    let caller = &Caller::operator();
    match command {
        TenantCommand::Create { name, admin_email } => {
            let view = onboarding::create_tenant(app, caller, name, admin_email).await?;
            note_temporary_password(format, view.admin.temporary_password.is_some());
            print(format, &view)
        }
        TenantCommand::List => print(
            format,
            &collect(u32::MAX, |page| async move { onboarding::list_tenants(app, caller, &page).await }).await?,
        ),
        TenantCommand::Show { tenant } => print(format, &onboarding::show_tenant(app, caller, &tenant).await?),
    }
}

pub(crate) async fn user(app: &App, format: Format, command: UserCommand) -> Result<(), CliError> {
    let caller = &Caller::operator();
    match command {
        UserCommand::Invite { tenant, email, role } => {
            let view = onboarding::invite_user(app, caller, &tenant, email, role).await?;
            note_temporary_password(format, view.temporary_password.is_some());
            print(format, &view)
        }
        UserCommand::List { tenant } => {
            let all = collect(u32::MAX, |page| {
                let tenant = &tenant;
                async move { onboarding::list_users(app, caller, tenant, &page).await }
            })
            .await?;
            print(format, &all)
        }
    }
}

/// Tells a person (not a script) that the password below will not be shown again.
fn note_temporary_password(format: Format, shown: bool) {
    if shown && format == Format::Table {
        eprintln!("note: the temporary password is shown once; the first sign-in must replace it");
    }
}
