# kuryer's bot, English. Every key here exists in ru/ and uz/ with the same
# placeholders (a test checks it). Plain text: no Markdown, no HTML.

start =
    Hi! I deliver new posts of Telegram channels to you.
    1. Send /add @channel (or forward me a post) to subscribe.
    2. Add me to your group and send /link there to get posts in it; /list to manage everything.
help =
    Commands:
    /add @channel … — subscribe (several names at once, links work too)
    /list — your subscriptions, with buttons
    /remove @channel — unsubscribe
    /pause @channel, /resume @channel — stop and restart delivery
    /filter @channel +word -word re:regex skip:video — filters (/filter @channel off clears them)
    /header @channel text, /footer @channel text, /replace @channel old => new — change the text of posts (off clears)
    /quiet 23:00-07:00 Asia/Tashkent — hold posts at night, deliver them after (/quiet off)
    /lang uz|ru|en — language
    /link — send it in a group or channel where you added me
unknown-command = I don't know that command. /help lists what I can do.
not-a-command = Send me a command, for example /add @channel. /help lists them all.
rate-limited = Too many commands at once. Please wait a few seconds.
too-long = That message is too long for me.
add-usage = Send /add followed by channel names, for example: /add @durov t.me/telegram
add-ok = ✅ @{ $name }: subscribed.
add-pending = ⏳ @{ $name }: subscribed; I am still checking this channel, posts start once it is ready.
add-waits-reader = ⏳ @{ $name }: subscribed, but I cannot read this channel yet: I am not its administrator and this service has no reader account. Posts start once its operator adds one, or once the channel's owner makes me an administrator.
add-waits-budget = ⏳ @{ $name }: subscribed; I have checked as many new channels as Telegram allows today, so this one is checked tomorrow (UTC) and posts start then.
add-waits-flood = ⏳ @{ $name }: subscribed; Telegram asked me to wait before checking more channels, so this one is checked a little later and posts start then.
add-already = ℹ️ @{ $name }: you are already subscribed.
add-already-paused = ℹ️ @{ $name }: you are subscribed, but paused. /resume @{ $name } restarts it.
add-not-found = ❌ @{ $name }: there is no such channel.
add-not-channel = ❌ @{ $name }: this is not a channel.
add-private = ❌ { $input }: private channels cannot be followed; send the channel's public @name.
add-protected = ❌ @{ $name }: this channel protects its content, so its posts cannot be forwarded.
protected-channel = ℹ️ { $name } protects its content: Telegram does not let anyone forward or copy its posts, so I cannot deliver them. You will get a link to each public post instead. (I tell you this once.)
resolve-ready = ✅ @{ $name } is ready: posts will arrive here.
resolve-invalid = ❌ @{ $name }: there is no such channel, so this subscription will deliver nothing. It stays in /list as not available; /remove @{ $name } drops it.
resolve-private = ❌ @{ $name } is a private channel I cannot read, so this subscription will deliver nothing. It stays in /list as not available; /remove @{ $name } drops it.
resolve-not-channel = ❌ @{ $name } is not a channel, so this subscription will deliver nothing. It stays in /list as not available; /remove @{ $name } drops it.
add-bad-name = ❌ { $input }: this is not a channel name.
add-quota = ❌ @{ $name }: you have reached the limit of { $max } subscriptions.
add-rate-limited = ⏳ The other names were not checked: each name costs one of your commands. Send them again in a minute.
add-too-many = Only the first { $max } names were handled.
list-empty = You have no subscriptions yet. Send /add @channel.
list-header = Your subscriptions ({ $count }), page { $page } of { $pages }:
status-active = active
status-paused = paused
status-pending = being checked
status-waits-reader = waiting: nobody can read it yet
status-waits-budget = waiting: checked tomorrow
status-waits-flood = waiting: checked a little later
status-broken = not available
status-dest-off = destination lost
dest-private = private chat
btn-pause = ⏸ { $n }
btn-resume = ▶️ { $n }
btn-remove = 🗑 { $n }
btn-settings = ⚙️ { $n }
btn-prev = ◀️ Back
btn-next = Next ▶️
btn-list = ⬅️ To the list
removed = 🗑 @{ $name }: removed.
paused = ⏸ @{ $name }: paused.
resumed = ▶️ @{ $name }: delivering again.
not-subscribed = ❌ { $input }: you are not subscribed to that.
name-usage = Send /{ $command } followed by a channel name, for example /{ $command } @durov
lang-usage = Choose a language: /lang uz, /lang ru or /lang en.
lang-ok = Done: I will talk to you in English.
link-private = To get posts in a group or channel: add me there, then send /link in that chat (you must be its admin).
link-code = For a channel: add me as its admin, then post there: /link { $code } (valid 10 minutes).
link-ok-chat = This chat now receives posts chosen by its admin.
link-ok-owner = ✅ "{ $title }" is now one of your destinations. In /list, press ⚙️ on a subscription to send it there.
link-not-admin = Only an admin of this chat can link it.
link-other-owner = This chat is already linked by another user.
link-start-first = Please start me in a private chat first (/start), then send /link here again.
link-hint = Hi! An admin of this chat can send /link to receive channel posts here.
group-only-link = In groups I only understand /link. Talk to me in a private chat for everything else.
dest-lost = I was removed from "{ $title }", so posts to it are paused. Add me back and send /link there to resume.
settings = Settings of @{ $name }
    Mode: { $mode }
    Goes to: { $dest }
    Filters: { $filters }
    Change filters with: /filter @{ $name } +word -word re:regex skip:video (or off)
mode-copy = copy (no "Forwarded from")
mode-forward = forward (with "Forwarded from")
btn-copy = Copy
btn-forward = Forward
filters-none = none
filter-usage = Send /filter @channel and rules: +word (only posts with it), -word (never posts with it), re:regex, skip:photo|video|document|audio|voice|animation|sticker|text, or off to clear.
filter-ok = ✅ Filters of @{ $name } saved.
filter-cleared = ✅ Filters of @{ $name } cleared.
filter-bad = ❌ That filter cannot be used: check the words, the regular expression (up to 200 characters) and the media kinds.
routed = ✅ @{ $name } now goes to { $dest }.
stale = This button is out of date. Send /list again.
done = Done.
admins-only = This command is for kuryer's administrators.
stats =
    Users: { $users }
    Channels: { $channels }
    Subscriptions: { $active } active of { $subs }
    Sent: { $hour } in the last hour, { $day } in the last day
    Queue: { $queued } waiting, { $inflight } sending; 429 answers: { $throttled }
    Reader accounts: { $readers }
error = Something went wrong on my side. Please try again in a minute.
cmd-start = Start and a short introduction
cmd-help = What I can do
cmd-add = Subscribe to channels
cmd-list = Your subscriptions
cmd-remove = Unsubscribe from a channel
cmd-pause = Pause a channel
cmd-resume = Resume a channel
cmd-filter = Filters of a channel
cmd-lang = Language
cmd-link = Send posts to this group or channel

# Edits and deletions mirrored (issue 16)
mirror-settings =
    Edits of the post: { $edits }
    Deletions: { $deletions }
    (Forwarded copies cannot be edited: with mode forward, edits are not mirrored.)
edits-mirror = the copy is edited too
edits-ignore = ignored
edits-repost = the edited post is sent again
deletions-mirror = the copy is deleted too
deletions-ignore = ignored
btn-edits-mirror = ✏️ Edit copy
btn-edits-ignore = Ignore edits
btn-edits-repost = Resend edited
btn-deletions-mirror = 🗑 Delete copy
btn-deletions-ignore = Keep copy
add-backfill = Sending the last { $count } posts of @{ $name }, oldest first.
add-backfill-bad = "last N" takes a number from 1 to 50.
link-throttled = Too many wrong codes were posted here. /link codes posted in this chat are not read for { $minutes } minutes.
dest-admin-lost = You are no longer an admin of "{ $title }", so it is no longer one of your destinations. What went there now comes to this chat. Its admins can send /link there.
route-not-admin = You are not an admin of that chat any more, so posts cannot go there.
add-budget-channels = ⏳ @{ $name }: you have added { $max } new channels today, the most for one day. Try again tomorrow.
add-budget-pending = ⏳ @{ $name }: { $max } of your channels are still being checked. Try again when they are ready.
add-backfill-open = ⏳ The earlier posts of @{ $name } are still being sent; ask again when they have arrived.
add-backfill-budget = ⏳ No earlier posts for @{ $name }: you asked for them { $max } times today, the most for one day.
# Text transforms and quiet hours (issue 16).
header-usage = Send /header @channel and the line to put above every post (off removes it).
footer-usage = Send /footer @channel and the line to put below every post (off removes it).
replace-usage = Send /replace @channel old => new (plain text), or /replace @channel re:pattern => new (a regular expression, up to 200 characters; $1 names a group). /replace @channel off removes all replacements.
transform-saved = ✅ @{ $name }: text changes saved. They apply to text posts and single captions; albums keep their captions.
transform-cleared = ✅ @{ $name }: no text changes any more.
transform-bad = ❌ That cannot be used: check the regular expression (up to 200 characters), at most 20 replacements, texts up to 1,000 characters.
patterns-budget = ❌ Your subscriptions may use at most { $max } regular expressions together (replacements and filters). Remove one first.
transform-forward = ℹ️ This subscription forwards posts, and forwarded posts keep their original text. Switch it to copy in /list for the changes to apply.
quiet-usage = Send /quiet 23:00-07:00 Asia/Tashkent (start-end and your time zone) for all your subscriptions, or /quiet @channel … for one; /quiet off ends quiet hours.
quiet-bad-zone = ❌ I do not know the time zone { $tz }. Write it as Area/City, for example Asia/Tashkent or Europe/Moscow.
quiet-ok = 🌙 @{ $name }: posts arriving between { $from } and { $to } ({ $tz }) are held and delivered after { $to }, in order.
quiet-ok-all = 🌙 { $count } subscriptions: posts arriving between { $from } and { $to } ({ $tz }) are held and delivered after { $to }, in order.
quiet-off = ✅ @{ $name }: no quiet hours; held posts are delivered now.
quiet-off-all = ✅ { $count } subscriptions: no quiet hours; held posts are delivered now.
dest-topic-lost = The topic "{ $title }" was deleted, so posts to it are paused; the rest of the group is not affected. Send /link in another topic to choose a new one.
# Digests (issue 16 item 5).
digest-usage = Send /digest daily 09:00 Asia/Tashkent (time and your time zone) or /digest hourly to get posts bundled into one message, for all your subscriptions or /digest @channel … for one; /digest off sends posts one by one again.
digest-all = { $count } subscriptions
digest-ok-daily = 📰 { $who }: posts are collected and sent as one digest every day at { $at } ({ $tz }).
digest-ok-hourly = 📰 { $who }: posts are collected and sent as one digest every hour.
digest-off = ✅ { $who }: no digest; what it held comes now in one last digest, then posts are sent one by one again.
digest-header = 📰 Digest: { $count } posts
told-channel-private = 🔒 { $name } became private: kuryer can no longer read it, so your subscription to it is paused until the channel is public again. Remove it, or keep it and it resumes by itself.
told-channel-gone = ⚠️ { $name } was deleted or can no longer be reached, so your subscription to it is paused. Remove it, or keep it and it resumes by itself if the channel comes back.
told-channel-unlisted = 🔒 { $name } became private (it has no public name any more). Posts still arrive while kuryer's reader stays a member, but links to posts no longer open and it cannot be added again by name.
told-channel-renamed = ✏️ { $name } is now @{ $new }. Your subscription follows it; links to posts use the new name.
told-remove = 🗑 Remove
told-settings = ⚙️ Settings
told-open = Open channel
told-channel-bot-removed = ⚠️ My bot is no longer an admin of { $name }, so its posts no longer reach me and your subscription to it is paused. It resumes by itself once the channel's owner makes the bot an admin again; or remove it.
told-channel-resumed = ▶️ { $name } can be read again: your subscription to it resumed by itself.
status-channel-private = paused: the channel is private
status-channel-gone = paused: the channel was deleted or cannot be reached
status-channel-bot-removed = paused: my bot is no longer the channel's admin
settings-channel-paused = ⏸ { $why } (since { $since } UTC). It resumes by itself when the channel can be read again.
