//! `kuryer-sim --print-config`: instead of the JSON line of addresses, a
//! config.toml for `kuryer run` against this very process, so no address
//! has to be copied by hand (with `--bot-api-port 0` the port is a free
//! one, new on every start; by default it is 8081 every time).

use std::io::Write;
use std::net::SocketAddr;

/// The config text: the Bot API face's URL and the bot's token, a database
/// and Redis prefix of their own (so a laptop's real kuryer data is not
/// touched), and the control API's address and the chat client's command
/// as comments.
pub(super) fn text(
    bot_api: &str,
    token: &str,
    bot: usize,
    control: SocketAddr,
    mtproto: bool,
) -> String {
    let mtproto_note = if mtproto {
        "# Channels: curl -d '{\"title\": \"News\", \"username\": \"news\", \"admin_bots\": [BOT]}' \\\n\
         #   -H 'content-type: application/json' CONTROL/mtproto/channels\n"
    } else {
        ""
    };
    let mtproto_note = mtproto_note
        .replace("CONTROL", &format!("http://{control}"))
        .replace("BOT", &bot.to_string());
    format!(
        "# kuryer run against kuryer-sim (a simulated Telegram; the token is made up).\n\
         # Control API: http://{control}\n\
         # Talk to the bot: kuryer-sim chat --control http://{control} --user 42\n\
         {mtproto_note}\
         \n\
         [database]\n\
         url = \"postgres://postgres@127.0.0.1:5432/kuryer_sim\"\n\
         \n\
         [redis]\n\
         url = \"redis://127.0.0.1:6379/0\"\n\
         key_prefix = \"kuryer_sim:\"\n\
         \n\
         [telegram]\n\
         bot_api_url = \"{bot_api}\"\n\
         bot_tokens = [\"{token}\"]\n\
         \n\
         [http]\n\
         listen = \"127.0.0.1:8080\"\n"
    )
}

/// Prints [`text`] on stdout, flushed: the parent may be reading it.
pub(super) fn print(
    bot_api: &str,
    token: &str,
    bot: usize,
    control: SocketAddr,
    mtproto: bool,
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text(bot_api, token, bot, control, mtproto).as_bytes())?;
    out.flush()
}
