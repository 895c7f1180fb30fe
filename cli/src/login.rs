//! `audiomill login` and `audiomill logout`.

use crate::{
    exit::Exit,
    problem::Problem,
    session::{LoginStore, SavedLogin, Session},
};
use audiomill_client::Error;
use std::io::{self, BufRead, IsTerminal, Write};

#[derive(clap::Args, Debug)]
pub struct LoginArgs {
    /// The server's address, such as https://audiomill.example.com.
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// Your e-mail address; asked for when left out.
    #[arg(long)]
    pub email: Option<String>,
    /// Read the password from standard input (its first line) instead of asking for it.
    #[arg(long)]
    pub password_stdin: bool,
}

pub async fn login(args: LoginArgs) -> Result<Exit, Problem> {
    let server = server_address(&args.server)?;
    let store = LoginStore::in_config_dir()?;
    let email = match args.email {
        Some(email) => email,
        None if args.password_stdin || !io::stdin().is_terminal() => {
            return Err(Problem::new(
                "Give your e-mail address with --email when there is no terminal to ask on.",
            ));
        }
        None => ask("E-mail: ")?,
    };
    let password = if args.password_stdin {
        first_line_of_stdin()?
    } else {
        rpassword::prompt_password(format!("Password for {email}: ")).map_err(|_| {
            Problem::new(
                "There is no terminal to ask for the password on; pass it on standard input with --password-stdin.",
            )
        })?
    };
    let tokens = match audiomill_client::login(&server, &email, &password).await {
        Ok(tokens) => tokens,
        Err(Error::ErrorResponse(answer)) if answer.status().as_u16() == 401 => {
            return Err(Problem::new(format!(
                "{server} refused the e-mail address or the password."
            )));
        }
        // An address that is not an Audiomill server answers /login with its own 404 or
        // 405, which are not in our document.
        Err(Error::UnexpectedResponse(answer)) if answer.status().is_client_error() => {
            return Err(Problem::not_audiomill(&server));
        }
        Err(error) => return Err(Problem::from_api(&server, error)),
    };
    store.write(&SavedLogin::new(server.clone(), email.clone(), tokens)?)?;
    println!("Logged in to {server} as {email}.");
    Ok(Exit::Success)
}

pub async fn logout() -> Result<Exit, Problem> {
    let mut session = Session::load()?;
    let server = session.server().to_owned();
    // Ending the login on the server is best effort: the login is forgotten here either way.
    if let Ok(client) = session.client().await {
        let _ = client.logout().send().await;
    }
    session.forget()?;
    println!("Logged out of {server}.");
    Ok(Exit::Success)
}

/// `text` as a server address: http or https, with a host; without a trailing slash.
pub(crate) fn server_address(text: &str) -> Result<String, Problem> {
    let refused = || {
        Problem::new(format!(
            "`{text}` is not a server address; give one such as https://audiomill.example.com."
        ))
    };
    let url = reqwest::Url::parse(text).map_err(|_| refused())?;
    if !["http", "https"].contains(&url.scheme()) || url.host_str().is_none() {
        return Err(refused());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn ask(question: &str) -> Result<String, Problem> {
    eprint!("{question}");
    let _ = io::stderr().flush();
    let mut answer = String::new();
    io::stdin()
        .read_line(&mut answer)
        .map_err(|error| Problem::new(format!("Could not read the answer: {error}.")))?;
    Ok(answer.trim().to_owned())
}

fn first_line_of_stdin() -> Result<String, Problem> {
    let mut line = String::new();
    io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|error| Problem::new(format!("Could not read the password: {error}.")))?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(Problem::new("No password came on standard input."));
    }
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_are_checked_and_tidied() {
        assert_eq!(
            server_address("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            server_address("https://example.com/audiomill/").unwrap(),
            "https://example.com/audiomill"
        );
        for wrong in ["127.0.0.1:8080", "ftp://example.com", "http//x", ""] {
            let problem = server_address(wrong).unwrap_err().to_string();
            assert!(
                problem.contains("is not a server address"),
                "{wrong}: {problem}"
            );
        }
    }
}
