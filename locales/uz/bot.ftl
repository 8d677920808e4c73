# kuryer boti, o'zbekcha (lotin). Kalitlar va o'rinbosarlar en/ va ru/ bilan bir xil (test tekshiradi).

start =
    Salom! Men Telegram kanallarining yangi postlarini sizga yetkazaman.
    1. Obuna bo'lish uchun /add @kanal yuboring (yoki menga post uzating).
    2. Meni guruhingizga qo'shib, u yerda /link yuboring — postlar o'sha yerga boradi; /list — obunalarni boshqarish.
help =
    Buyruqlar:
    /add @kanal … — obuna bo'lish (bir nechta nom va havolalar ham bo'ladi)
    /list — obunalaringiz, tugmalar bilan
    /remove @kanal — obunani bekor qilish
    /pause @kanal, /resume @kanal — to'xtatish va davom ettirish
    /filter @kanal +so'z -so'z re:ifoda skip:video — filtrlar (/filter @kanal off — tozalash)
    /header @kanal matn, /footer @kanal matn, /replace @kanal eski => yangi — postlar matnini o'zgartirish (off — tozalash)
    /quiet 23:00-07:00 Asia/Tashkent — tunda postlarni ushlab turish, keyin yetkazish (/quiet off)
    /lang uz|ru|en — til
    /link — meni qo'shgan guruh yoki kanalda yuboring
unknown-command = Bunday buyruqni bilmayman. /help — buyruqlar ro'yxati.
not-a-command = Menga buyruq yuboring, masalan /add @kanal. /help — barcha buyruqlar.
rate-limited = Buyruqlar juda ko'p. Bir necha soniya kuting.
too-long = Bu xabar men uchun juda uzun.
add-usage = /add dan keyin kanal nomlarini yuboring, masalan: /add @durov t.me/telegram
add-ok = ✅ @{ $name }: obuna bo'ldingiz.
add-pending = ⏳ @{ $name }: obuna bo'ldingiz; kanal hali tekshirilmoqda, tayyor bo'lgach postlar keladi.
add-waits-reader = ⏳ @{ $name }: obuna bo'ldingiz, lekin bu kanalni hozircha o'qiy olmayman: men uning administratori emasman, xizmatda esa o'quvchi akkaunt yo'q. Operator shunday akkaunt qo'shgach yoki kanal egasi meni administrator qilgach postlar keladi.
add-waits-budget = ⏳ @{ $name }: obuna bo'ldingiz; bugun Telegram ruxsat bergancha yangi kanalni tekshirdim, bu kanal ertaga (UTC) tekshiriladi va postlar o'shanda keladi.
add-waits-flood = ⏳ @{ $name }: obuna bo'ldingiz; Telegram yangi kanallarni tekshirishni biroz kutishni so'radi, bu kanal birozdan keyin tekshiriladi va postlar o'shanda keladi.
add-already = ℹ️ @{ $name }: siz allaqachon obunasiz.
add-already-paused = ℹ️ @{ $name }: obunangiz bor, lekin to'xtatilgan. /resume @{ $name } davom ettiradi.
add-not-found = ❌ @{ $name }: bunday kanal yo'q.
add-not-channel = ❌ @{ $name }: bu kanal emas.
add-private = ❌ { $input }: yopiq kanallarga obuna bo'lib bo'lmaydi; kanalning ochiq @nomini yuboring.
add-protected = ❌ @{ $name }: bu kanal kontentini himoya qiladi, postlarini uzatib bo'lmaydi.
protected-channel = ℹ️ { $name } kontentini himoya qiladi: Telegram uning postlarini uzatish yoki nusxalashga ruxsat bermaydi, shuning uchun ularni yetkaza olmayman. Buning o'rniga har bir ochiq postga havola olasiz. (Bu haqda bir marta aytaman.)
resolve-ready = ✅ @{ $name } tayyor: postlar shu yerga keladi.
resolve-invalid = ❌ @{ $name }: bunday kanal yo'q, shuning uchun bu obuna hech narsa yetkazmaydi. /list da mavjud emas deb turadi; /remove @{ $name } uni o'chiradi.
resolve-private = ❌ @{ $name } yopiq kanal, uni o'qiy olmayman, shuning uchun bu obuna hech narsa yetkazmaydi. /list da mavjud emas deb turadi; /remove @{ $name } uni o'chiradi.
resolve-not-channel = ❌ @{ $name } kanal emas, shuning uchun bu obuna hech narsa yetkazmaydi. /list da mavjud emas deb turadi; /remove @{ $name } uni o'chiradi.
add-bad-name = ❌ { $input }: bu kanal nomi emas.
add-quota = ❌ @{ $name }: { $max } ta obuna chegarasiga yetdingiz.
add-rate-limited = ⏳ Qolgan nomlar tekshirilmadi: har bir nom bitta buyruq hisoblanadi. Bir daqiqadan keyin qayta yuboring.
add-too-many = Faqat birinchi { $max } ta nom ko'rib chiqildi.
list-empty = Hali obunalaringiz yo'q. /add @kanal yuboring.
list-header = Obunalaringiz ({ $count }), { $pages } sahifadan { $page }-sahifa:
status-active = faol
status-paused = to'xtatilgan
status-pending = tekshirilmoqda
status-waits-reader = kutmoqda: hozircha uni o'qiy oladigan yo'q
status-waits-budget = kutmoqda: ertaga tekshiriladi
status-waits-flood = kutmoqda: birozdan keyin tekshiriladi
status-broken = mavjud emas
status-dest-off = qabul qiluvchi yo'qolgan
dest-private = shaxsiy chat
btn-pause = ⏸ { $n }
btn-resume = ▶️ { $n }
btn-remove = 🗑 { $n }
btn-settings = ⚙️ { $n }
btn-prev = ◀️ Orqaga
btn-next = Keyingi ▶️
btn-list = ⬅️ Ro'yxatga
removed = 🗑 @{ $name }: obuna o'chirildi.
paused = ⏸ @{ $name }: to'xtatildi.
resumed = ▶️ @{ $name }: yetkazish davom etmoqda.
not-subscribed = ❌ { $input }: sizda bunday obuna yo'q.
name-usage = /{ $command } dan keyin kanal nomini yuboring, masalan /{ $command } @durov
lang-usage = Tilni tanlang: /lang uz, /lang ru yoki /lang en.
lang-ok = Tayyor: endi siz bilan o'zbekcha gaplashaman.
link-private = Postlar guruh yoki kanalga borishi uchun: meni u yerga qo'shing va o'sha chatda /link yuboring (siz uning administratori bo'lishingiz kerak).
link-code = Kanal uchun: meni uning administratori qiling va u yerda e'lon qiling: /link { $code } (kod 10 daqiqa amal qiladi).
link-ok-chat = Endi bu chat administratori tanlagan postlarni oladi.
link-ok-owner = ✅ "{ $title }" endi qabul qiluvchilaringizdan biri. /list da obuna yonidagi ⚙️ ni bosib, uni o'sha yerga yo'naltiring.
link-not-admin = Bu chatni faqat uning administratori ulay oladi.
link-other-owner = Bu chat boshqa foydalanuvchi tomonidan ulangan.
link-start-first = Avval meni shaxsiy chatda ishga tushiring (/start), so'ng bu yerda yana /link yuboring.
link-hint = Salom! Bu chat administratori kanal postlarini shu yerda olish uchun /link yuborishi mumkin.
group-only-link = Guruhlarda faqat /link ni tushunaman. Qolgani uchun menga shaxsiy chatda yozing.
dest-lost = Meni "{ $title }" dan chiqarishdi, u yerga yetkazish to'xtatildi. Meni qayta qo'shing va u yerda /link yuboring.
settings = @{ $name } sozlamalari
    Rejim: { $mode }
    Qayerga: { $dest }
    Filtrlar: { $filters }
    Filtrlarni o'zgartirish: /filter @{ $name } +so'z -so'z re:ifoda skip:video (yoki off)
mode-copy = nusxa ("Uzatilgan" belgisisiz)
mode-forward = uzatish ("Uzatilgan" belgisi bilan)
btn-copy = Nusxa
btn-forward = Uzatish
filters-none = yo'q
filter-usage = /filter @kanal va qoidalarni yuboring: +so'z (faqat shu so'zli postlar), -so'z (bu so'zli postlar hech qachon), re:ifoda, skip:photo|video|document|audio|voice|animation|sticker|text, yoki tozalash uchun off.
filter-ok = ✅ @{ $name } filtrlari saqlandi.
filter-cleared = ✅ @{ $name } filtrlari tozalandi.
filter-bad = ❌ Bu filtrni ishlatib bo'lmaydi: so'zlarni, muntazam ifodani (200 belgigacha) va media turlarini tekshiring.
routed = ✅ @{ $name } endi { $dest } ga boradi.
stale = Bu tugma eskirgan. /list ni qayta yuboring.
done = Tayyor.
admins-only = Bu buyruq faqat kuryer administratorlari uchun.
stats =
    Foydalanuvchilar: { $users }
    Kanallar: { $channels }
    Obunalar: { $subs } tadan { $active } tasi faol
    Yuborildi: so'nggi soatda { $hour }, so'nggi sutkada { $day }
    Navbat: { $queued } kutmoqda, { $inflight } yuborilmoqda; 429 javoblar: { $throttled }
    O'quvchi akkauntlar: { $readers }
error = Menda nimadir xato ketdi. Bir daqiqadan so'ng qayta urinib ko'ring.
cmd-start = Boshlash va qisqa tanishuv
cmd-help = Nimalar qila olaman
cmd-add = Kanallarga obuna bo'lish
cmd-list = Obunalaringiz
cmd-remove = Kanal obunasini bekor qilish
cmd-pause = Kanalni to'xtatish
cmd-resume = Kanalni davom ettirish
cmd-filter = Kanal filtrlari
cmd-lang = Til
cmd-link = Postlarni shu guruh yoki kanalga yuborish

# Tahrir va o'chirishlarni takrorlash (issue 16)
mirror-settings =
    Post tahrirlari: { $edits }
    O'chirishlar: { $deletions }
    (Uzatilgan nusxalarni tahrirlab bo'lmaydi: forward rejimida tahrirlar takrorlanmaydi.)
edits-mirror = nusxa ham tahrirlanadi
edits-ignore = e'tiborsiz
edits-repost = tahrirlangan post qayta yuboriladi
deletions-mirror = nusxa ham o'chiriladi
deletions-ignore = e'tiborsiz
btn-edits-mirror = ✏️ Nusxani tahrirlash
btn-edits-ignore = Tahrirsiz
btn-edits-repost = Qayta yuborish
btn-deletions-mirror = 🗑 Nusxani o'chirish
btn-deletions-ignore = Nusxani qoldirish
add-backfill = @{ $name } kanalining oxirgi { $count } ta posti yuborilmoqda, eskisidan boshlab.
add-backfill-bad = "last N" uchun 1 dan 50 gacha son kiriting.
link-throttled = Bu yerda juda ko'p noto'g'ri kod yuborildi. Bu chatdagi /link kodlari { $minutes } daqiqa qabul qilinmaydi.
dest-admin-lost = Siz endi "{ $title }" administratori emassiz, shuning uchun u endi qabul qiluvchilaringizdan emas. U yerga borgan narsalar endi shu chatga keladi. Uning administratorlari u yerda /link yuborishi mumkin.
route-not-admin = Siz endi u chatning administratori emassiz, u yerga postlar yuborib bo'lmaydi.
add-budget-channels = ⏳ @{ $name }: bugun { $max } ta yangi kanal qo'shdingiz, bu bir kunlik chegara. Ertaga urinib ko'ring.
add-budget-pending = ⏳ @{ $name }: { $max } ta kanalingiz hali tekshirilmoqda. Ular tayyor bo'lgach urinib ko'ring.
add-backfill-open = ⏳ @{ $name } ning avvalgi postlari hali yuborilmoqda; ular kelgach yana so'rang.
add-backfill-budget = ⏳ @{ $name } ning avvalgi postlari yuborilmaydi: bugun ularni { $max } marta so'radingiz, bu bir kunlik chegara.
# Matnni o'zgartirish va tinch soatlar (issue 16).
header-usage = /header @kanal va har bir post ustiga qo'yiladigan qatorni yuboring (off — olib tashlash).
footer-usage = /footer @kanal va har bir post ostiga qo'yiladigan qatorni yuboring (off — olib tashlash).
replace-usage = /replace @kanal eski => yangi (oddiy matn) yoki /replace @kanal re:ifoda => yangi (200 belgigacha muntazam ifoda; $1 — guruh) yuboring. /replace @kanal off barcha almashtirishlarni olib tashlaydi.
transform-saved = ✅ @{ $name }: matn o'zgarishlari saqlandi. Ular matnli postlar va yakka izohlarga qo'llanadi; albomlar izohini saqlaydi.
transform-cleared = ✅ @{ $name }: matn endi o'zgartirilmaydi.
transform-bad = ❌ Bunday bo'lmaydi: muntazam ifodani (200 belgigacha), ko'pi bilan 20 almashtirish va 1000 belgigacha matnlarni tekshiring.
patterns-budget = ❌ Barcha obunalaringizda birgalikda ko'pi bilan { $max } ta muntazam ifoda (almashtirish va filtrlar) bo'lishi mumkin. Avval bittasini o'chiring.
transform-forward = ℹ️ Bu obuna postlarni uzatadi, uzatilgan postlar esa asl matnini saqlaydi. O'zgarishlar ishlashi uchun /list da nusxa ko'chirishga o'tkazing.
quiet-usage = Barcha obunalar uchun /quiet 23:00-07:00 Asia/Tashkent (boshlanish-tugash va vaqt mintaqangiz) yoki bittasi uchun /quiet @kanal … yuboring; /quiet off tinch soatlarni o'chiradi.
quiet-bad-zone = ❌ { $tz } vaqt mintaqasini bilmayman. Uni Hudud/Shahar ko'rinishida yozing, masalan Asia/Tashkent yoki Europe/Moscow.
quiet-ok = 🌙 @{ $name }: { $from } dan { $to } gacha ({ $tz }) kelgan postlar ushlab turiladi va { $to } dan keyin tartib bilan yetkaziladi.
quiet-ok-all = 🌙 Obunalar: { $count }. { $from } dan { $to } gacha ({ $tz }) kelgan postlar ushlab turiladi va { $to } dan keyin tartib bilan yetkaziladi.
quiet-off = ✅ @{ $name }: tinch soatlar yo'q; ushlab turilgan postlar hozir yetkaziladi.
quiet-off-all = ✅ Obunalar: { $count }. Tinch soatlar yo'q; ushlab turilgan postlar hozir yetkaziladi.
dest-topic-lost = "{ $title }" mavzusi o'chirildi, u yerga yetkazish to'xtatildi; guruhning qolgan qismiga bu ta'sir qilmaydi. Yangisini tanlash uchun boshqa mavzuda /link yuboring.
# Dayjestlar (issue 16, 5-band).
digest-usage = Postlarni bitta xabarda olish uchun /digest daily 09:00 Asia/Tashkent (vaqt va vaqt mintaqangiz) yoki /digest hourly yuboring — barcha obunalar uchun, yoki bittasi uchun /digest @kanal …; /digest off — yana birma-bir.
digest-all = { $count } ta obuna
digest-ok-daily = 📰 { $who }: postlar yig‘ilib, har kuni soat { $at } da ({ $tz }) bitta dayjest bo‘lib keladi.
digest-ok-hourly = 📰 { $who }: postlar yig‘ilib, har soatda bitta dayjest bo‘lib keladi.
digest-off = ✅ { $who }: dayjest o‘chirildi; to‘plangan postlar hozir oxirgi dayjestda keladi, keyin postlar yana birma-bir keladi.
digest-header = 📰 Dayjest: { $count } ta post
told-channel-private = 🔒 { $name } yopiq kanalga aylandi: kuryer uni endi o'qiy olmaydi, shuning uchun unga obunangiz kanal yana ochiq bo'lguncha to'xtatildi. Uni o'chiring yoki qoldiring — o'zi davom etadi.
told-channel-gone = ⚠️ { $name } o'chirildi yoki endi unga kirib bo'lmaydi, shuning uchun unga obunangiz to'xtatildi. Uni o'chiring yoki qoldiring — kanal qaytsa, o'zi davom etadi.
told-channel-unlisted = 🔒 { $name } yopiq kanalga aylandi (endi ochiq nomi yo'q). kuryer o'quvchisi a'zo bo'lib qolguncha postlar keladi, lekin postlarga havolalar endi ochilmaydi va uni nomi bilan qayta qo'shib bo'lmaydi.
told-channel-renamed = ✏️ { $name } endi @{ $new } deb ataladi. Obunangiz unga ergashadi; postlarga havolalar yangi nomdan foydalanadi.
told-remove = 🗑 O'chirish
told-settings = ⚙️ Sozlamalar
told-open = Kanalni ochish
told-channel-bot-removed = ⚠️ Botim endi { $name } administratori emas, shuning uchun uning postlari menga yetib kelmaydi va unga obunangiz to'xtatildi. Kanal egasi botni yana administrator qilganda o'zi davom etadi; yoki uni o'chiring.
told-channel-resumed = ▶️ { $name } yana o'qilmoqda: unga obunangiz o'zi davom etdi.
status-channel-private = to'xtatilgan: kanal yopiq
status-channel-gone = to'xtatilgan: kanal o'chirilgan yoki unga kirib bo'lmaydi
status-channel-bot-removed = to'xtatilgan: botim endi kanal administratori emas
settings-channel-paused = ⏸ { $why } ({ $since } UTC dan beri). Kanalni yana o'qish mumkin bo'lganda o'zi davom etadi.
