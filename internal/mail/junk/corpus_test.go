package junk

import (
	"bytes"

	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime/quotedprintable"
	"petrel/internal/mail/message"
	"petrel/internal/store"
	"strings"
	"time"
)

// A generated corpus: no public spam corpus is reachable from the tests, so messages are
// put together from word pools and sentence templates by a seeded generator. Ham is
// newsletters, personal mail and receipts; spam is the classic families (pharmacy,
// prizes, advance fee, investment, phishing, dating, replicas, loans, SEO). The families
// share vocabulary on purpose (phishing imitates receipts, newsletters carry unsubscribe
// links and offers), and every message draws its own sentences, names, amounts and
// encodings, so no two messages are copies and a classifier that only memorized would fail.

type corpusMsg struct {
	raw  []byte
	junk bool
	kind string
}

type gen struct{ r *rand.Rand }

func newGen(seed uint64) *gen { return &gen{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

func (g *gen) pick(l []string) string { return l[g.r.IntN(len(l))] }

func (g *gen) fill(tmpl string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(tmpl, '{')
		if i < 0 {
			b.WriteString(tmpl)
			return b.String()
		}
		j := strings.IndexByte(tmpl[i:], '}')
		b.WriteString(tmpl[:i])
		b.WriteString(g.slot(tmpl[i+1 : i+j]))
		tmpl = tmpl[i+j+1:]
	}
}

var (
	firstNames = []string{"Anna", "Ben", "Carla", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kemal", "Lena", "Marco", "Nora", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tomás", "Ulla", "Victor", "Wen", "Yusuf", "Zoe"}
	lastNames  = []string{"Müller", "García", "Okafor", "Lindqvist", "Rossi", "Nguyen", "Kowalski", "Dubois", "Tanaka", "Schmidt", "Silva", "Haddad", "Brennan", "Novak", "Larsen"}
	hamDomains = []string{"gmail.com", "posteo.de", "fastmail.com", "example.org", "uni-hamburg.de", "acme-corp.com", "outlook.com", "mailbox.org"}
	shops      = []string{"Bookworm Books", "Nordic Outdoor", "PixelParts", "GreenGrocer", "CityRail", "Kitchen & Co", "Velo Shop", "HomeHardware"}
	shopDoms   = []string{"bookworm.example", "nordic-outdoor.example", "pixelparts.example", "greengrocer.example", "cityrail.example", "kitchenco.example", "veloshop.example", "homehw.example"}
	products   = []string{"hiking boots", "USB-C cable", "cast iron pan", "paperback novel", "rain jacket", "bike light", "coffee grinder", "monthly rail pass", "LED bulbs", "wool socks", "keyboard", "garden hose"}
	newsTopics = []string{"Go release notes", "community garden", "photography club", "city library", "open source weekly", "running group", "jazz festival", "neighbourhood council", "science podcast", "cooking school"}
	listDoms   = []string{"lists.golang.example", "garden.example", "photoclub.example", "library.example", "oss-weekly.example", "runners.example", "jazzfest.example", "council.example"}
	places     = []string{"the station", "Café Luna", "the office", "your place", "the park", "the library", "the old harbour", "the market"}
	days       = []string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "tomorrow", "next week"}
	drugs      = []string{"V1agra", "Cialis", "Xanax", "Tramadol", "Valium", "Phentermine", "Levitra", "Viagra"}
	coins      = []string{"Bitcoin", "Ethereum", "crypto", "BTC", "USDT", "forex", "NFT"}
	brands     = []string{"Rolex", "Omega", "Cartier", "Louis Vuitton", "Gucci", "Breitling"}
	spamDoms   = []string{"best-deals-4u.biz", "pharma-online.ru", "win-prize.top", "secure-verify.xyz", "crypto-gains.click", "datingnow.live", "replica-lux.shop", "fastloan24.info", "seo-rank.pro", "mail-notice.cc"}
	banks      = []string{"PayPal", "Amazon", "Netflix", "your bank", "Microsoft 365", "DHL", "Apple ID"}
	mailers    = []string{"Thunderbird 128.3", "Apple Mail (2.3774)", "Microsoft Outlook 16.0", "K-9 Mail", "Roundcube Webmail/1.6"}
	spamMailer = []string{"PHPMailer 5.2.1", "Mass Mailer Pro", "The Bat! (v4.0.24)", "", ""}
)

func (g *gen) slot(name string) string {
	switch name {
	case "first":
		return g.pick(firstNames)
	case "last":
		return g.pick(lastNames)
	case "product":
		return g.pick(products)
	case "shop":
		return g.pick(shops)
	case "topic":
		return g.pick(newsTopics)
	case "place":
		return g.pick(places)
	case "day":
		return g.pick(days)
	case "drug":
		return g.pick(drugs)
	case "coin":
		return g.pick(coins)
	case "brand":
		return g.pick(brands)
	case "bank":
		return g.pick(banks)
	case "num":
		return fmt.Sprint(2 + g.r.IntN(40))
	case "price":
		return fmt.Sprintf("%d.%02d", 3+g.r.IntN(300), g.r.IntN(100))
	case "big":
		return fmt.Sprintf("%d,%03d,000", 1+g.r.IntN(30), g.r.IntN(1000))
	case "pct":
		return fmt.Sprint(10 + g.r.IntN(85))
	case "order":
		return fmt.Sprintf("%03d-%07d", g.r.IntN(1000), g.r.IntN(10000000))
	case "time":
		return fmt.Sprintf("%d:%02d", 7+g.r.IntN(14), 15*g.r.IntN(4))
	case "spamurl":
		return fmt.Sprintf("http://%s/%x", g.pick(spamDoms), g.r.Uint32())
	}
	return name
}

var hamPersonal = []string{
	"Hi {first}, are we still on for {day} at {place}?",
	"I finished the draft of the report, could you have a look before {day}?",
	"Thanks for dinner yesterday, the soup was great and the kids loved the dessert.",
	"The meeting moved to {time} on {day}; I booked the small room on the second floor.",
	"Can you bring the {product} back when you come over? No rush.",
	"Mum says hello and asks whether you got the photos from the weekend.",
	"I attached the minutes of the project meeting; the action items are at the end.",
	"My train is late, I will be at {place} around {time}.",
	"Did you see the email from {first} about the budget? I think we should answer together.",
	"Let's postpone the review to {day}, half of the team is out sick.",
	"Here are my notes from the workshop, mostly about testing and deployment.",
	"Happy birthday! Hope you have a lovely day and a good year ahead.",
	"Could you send me the address of the plumber you mentioned?",
	"We are thinking of going hiking on {day} if the weather holds, want to join?",
	"I pushed the fix to the branch, the tests pass now on my machine.",
	"Reminder: the rent is due on Friday, I will transfer my half tonight.",
	"The kids' school play is on {day} at {time}, grandma is coming too.",
	"I will transfer the money to your account tonight, the bank app was down.",
	"Did you click the link I sent? The photos are free to download until {day}.",
	"Congratulations on the new job! We should celebrate on {day}.",
}

var hamNewsletter = []string{
	"Welcome to this week's issue of the {topic} newsletter.",
	"This month we met {num} new members and planned the spring programme.",
	"Our next meeting is on {day} at {time} at {place}; everyone is welcome.",
	"Read the full article on our website, with photos from the last event.",
	"Volunteers needed: we are looking for help with the stand on {day}.",
	"The new version fixes {num} bugs and improves the documentation.",
	"Thank you to everyone who sent feedback on the last issue.",
	"Members get a discount of {pct}% on the workshop tickets this season.",
	"In this issue: an interview with {first} {last}, a recipe, and the calendar.",
	"The library extends its opening hours on weekdays until {time}.",
	"Save the date: the annual gathering takes place on {day}.",
	"You receive this newsletter because you subscribed on our website.",
	"To change your preferences or unsubscribe, use the link at the bottom.",
}

var hamReceipt = []string{
	"Thank you for your order {order} at {shop}.",
	"Your {product} will ship within two business days.",
	"Order total: EUR {price}, paid by card ending in {num}.",
	"Track your parcel in your account under Orders.",
	"Your invoice is attached as a PDF; keep it for your records.",
	"Delivery address: {first} {last}, Hauptstraße {num}.",
	"Questions about your order? Reply to this email or call our service team.",
	"Items: 1 x {product} EUR {price}",
	"Your return window is 30 days from delivery.",
	"Your payment was received and your booking is confirmed.",
}

var hamPromo = []string{
	"Our summer sale starts {day}: {pct}% off {product} and more.",
	"Only this weekend: free shipping on orders over EUR 50.",
	"Limited offer for members: a second {product} at half price.",
	"New in store: the {product} everyone asked for, now in three colours.",
	"Click here to see all offers in your account.",
	"Thank you for being a customer of {shop} for {num} years.",
	"You can unsubscribe from our offers at any time in your account settings.",
}

var spamFamilies = map[string][]string{
	"pharmacy": {
		"Buy {drug} online without prescription!!! Lowest prices guaranteed",
		"{drug} only ${price} per pill, discreet shipping worldwide",
		"Enlarge your confidence, satisfaction GUARANTEED or money back",
		"No doctor visit needed, order {drug} now at {spamurl}",
		"Our online pharmacy has {pct}% OFF all meds this week only",
	},
	"prize": {
		"CONGRATULATIONS! You have been selected as the WINNER of ${big}!!!",
		"Your email address won our international lottery draw",
		"To claim your prize send your full name, address and phone number",
		"This is not a joke, your prize of ${big} is waiting",
		"Click {spamurl} to claim your reward before it expires",
	},
	"fee": {
		"Dear friend, I am a barrister representing a deceased client with no heir",
		"I need your assistance to transfer the sum of ${big} to your account",
		"You will receive {pct}% of the total funds for your cooperation",
		"Please keep this transaction strictly confidential",
		"Reply with your bank details so that we can proceed urgently",
	},
	"invest": {
		"Make ${big} with {coin} trading from home, guaranteed returns",
		"Our {coin} robot doubled the money of {num},000 investors",
		"Invest today and earn {pct}% profit every week, risk free!!!",
		"Limited spots: join the {coin} secret investment club at {spamurl}",
		"Financial freedom is one click away, start with only $250",
	},
	"short": {
		"hey {first}, long time no see, look at this {spamurl}",
		"is this you in the video? {spamurl}",
		"check this out {spamurl}",
		"I thought you would like this: {spamurl}",
	},
	"phish": {
		"Thank you for your order {order}.",
		"Order total: EUR {price}, paid by card ending in {num}.",
		"Your {bank} account has been suspended due to unusual activity",
		"Verify your account within 24 hours or it will be closed permanently",
		"Click here to confirm your identity and payment information: {spamurl}",
		"We could not process your last order, update your billing details",
		"Security alert: unauthorized login attempt detected on your account",
	},
	"dating": {
		"Hot singles in your area are waiting to meet you tonight",
		"{first} sent you a private message and {num} photos, see them now",
		"No strings attached, join free and start chatting at {spamurl}",
		"Lonely? Thousands of women want to meet you this weekend",
	},
	"replica": {
		"Luxury {brand} replica watches at {pct}% off, best quality",
		"Designer {brand} bags for only ${price}, free shipping",
		"Look rich for less: perfect {brand} copies nobody can tell apart",
		"Visit our store {spamurl} and get a second item FREE",
	},
	"loan": {
		"Get approved for a loan of ${big} in minutes, bad credit OK",
		"Cash fast: no credit check, money in your account today",
		"Consolidate your debt and lower your payments by {pct}%",
		"Apply now at {spamurl}, pre-approved offer expires soon",
	},
	"seo": {
		"I noticed your website is not ranking on the first page of Google",
		"We guarantee top {num} rankings or your money back",
		"Our SEO experts can increase your traffic by {pct}% in one month",
		"Reply YES to get a free website audit and backlink report",
	},
}

var spamSubjects = map[string][]string{
	"pharmacy": {"Cheap {drug} - {pct}% OFF", "Your meds order", "Re: prescription", "Best pharmacy deals!!!"},
	"prize":    {"WINNER NOTIFICATION", "You won ${big}!!!", "Claim your prize now", "Congratulations {first}"},
	"fee":      {"Urgent business proposal", "Confidential transaction", "From Barrister {last}", "Assistance needed"},
	"invest":   {"Make money with {coin}", "{pct}% weekly profit", "Your {coin} opportunity", "Financial freedom"},
	"phish":    {"Account suspended", "Action required: verify your account", "{bank}: unusual activity", "Your order could not be processed"},
	"dating":   {"{first} wants to meet you", "New message from {first}", "Singles near you"},
	"replica":  {"{brand} at {pct}% off", "Luxury for less", "Replica {brand} sale"},
	"loan":     {"Pre-approved: ${big}", "Cash today", "Lower your payments"},
	"short":    {"hi", "Re:", "hello {first}", "({num})", "quick question"},
	"seo":      {"Your website ranking", "SEO proposal", "Page 1 of Google"},
}

// message builds one message: header, then a plain, HTML or multipart/alternative body in
// a random transfer encoding.
func (g *gen) message(from, subject string, paras []string, extra []string, html bool) []byte {
	var b strings.Builder
	date := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC).Add(time.Duration(g.r.IntN(300*24)) * time.Hour)
	fmt.Fprintf(&b, "From: %s\r\nTo: user@example.test\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%x@%s>\r\nMIME-Version: 1.0\r\n",
		from, subject, date.Format(time.RFC1123Z), g.r.Uint64(), domainOf(from))
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	text := strings.Join(paras, "\r\n\r\n")
	enc := []string{"7bit", "quoted-printable", "base64"}[g.r.IntN(3)]
	encode := func(s string) string {
		switch enc {
		case "base64":
			e := base64.StdEncoding.EncodeToString([]byte(s))
			var w strings.Builder
			for len(e) > 76 {
				w.WriteString(e[:76] + "\r\n")
				e = e[76:]
			}
			return w.String() + e
		case "quoted-printable":
			var w strings.Builder
			q := quotedprintable.NewWriter(&w)
			q.Write([]byte(s))
			q.Close()
			return strings.ReplaceAll(strings.ReplaceAll(w.String(), "\r\n", "\n"), "\n", "\r\n")
		}
		return s
	}
	htmlOf := func() string {
		var h strings.Builder
		h.WriteString("<html><head><style>p{font-family:sans-serif}</style></head><body>")
		for _, p := range paras {
			h.WriteString("<p>" + strings.ReplaceAll(p, "&", "&amp;") + "</p>")
		}
		h.WriteString("</body></html>")
		return h.String()
	}
	if !html {
		fmt.Fprintf(&b, "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: %s\r\n\r\n%s\r\n", enc, encode(text))
		return []byte(b.String())
	}
	if g.r.IntN(2) == 0 {
		fmt.Fprintf(&b, "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: %s\r\n\r\n%s\r\n", enc, encode(htmlOf()))
		return []byte(b.String())
	}
	bd := fmt.Sprintf("b%x", g.r.Uint32())
	fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=%q\r\n\r\n", bd)
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: %s\r\n\r\n%s\r\n", bd, enc, encode(text))
	fmt.Fprintf(&b, "--%s\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: %s\r\n\r\n%s\r\n--%s--\r\n", bd, enc, encode(htmlOf()), bd)
	return []byte(b.String())
}

// sentences draws n distinct sentences of pool, filled in.
func (g *gen) sentences(pool []string, n int) []string {
	idx := g.r.Perm(len(pool))[:min(n, len(pool))]
	out := make([]string, len(idx))
	for i, j := range idx {
		out[i] = g.fill(pool[j])
	}
	return out
}

func (g *gen) ham() corpusMsg {
	switch g.r.IntN(4) {
	case 3: // a shop's promotion: offers, percentages and "click here", but wanted
		i := g.r.IntN(len(shops))
		from := fmt.Sprintf("%q <news@%s>", shops[i], shopDoms[i])
		subject := g.fill(g.pick([]string{"{pct}% off this weekend", "New at {shop}", "Offers for you", "Sale: {product}"}))
		paras := g.sentences(hamPromo, 3+g.r.IntN(3))
		extra := []string{"List-Unsubscribe: <https://" + shopDoms[i] + "/u>"}
		return corpusMsg{g.message(from, subject, paras, extra, true), false, "promotion"}
	case 0: // personal
		first, last := g.pick(firstNames), g.pick(lastNames)
		from := fmt.Sprintf("%s %s <%s.%s@%s>", first, last, strings.ToLower(first), strings.ToLower(last), g.pick(hamDomains))
		subject := g.fill(g.pick([]string{"Re: {day}", "dinner", "the report", "Re: meeting on {day}", "photos", "quick question", "plans for {day}", "Fwd: notes"}))
		paras := append([]string{g.fill("Hi {first},")}, g.sentences(hamPersonal, 2+g.r.IntN(4))...)
		paras = append(paras, first)
		return corpusMsg{g.message(from, subject, paras, []string{"User-Agent: " + g.pick(mailers)}, g.r.IntN(4) == 0), false, "personal"}
	case 1: // newsletter
		i := g.r.IntN(len(listDoms))
		topic := newsTopics[i]
		from := fmt.Sprintf("%q <news@%s>", strings.ToUpper(topic[:1])+topic[1:], listDoms[i])
		subject := g.fill(g.pick([]string{"{topic}: issue {num}", "News from the {topic}", "This week at the {topic}", "{topic} - {day}"}))
		paras := g.sentences(hamNewsletter, 4+g.r.IntN(5))
		paras = append(paras, fmt.Sprintf("Unsubscribe: https://%s/unsubscribe?id=%x", listDoms[i], g.r.Uint32()))
		extra := []string{"List-Id: <news." + listDoms[i] + ">", "List-Unsubscribe: <https://" + listDoms[i] + "/u>", "Precedence: bulk"}
		return corpusMsg{g.message(from, subject, paras, extra, g.r.IntN(3) > 0), false, "newsletter"}
	default: // receipt
		i := g.r.IntN(len(shops))
		from := fmt.Sprintf("%q <orders@%s>", shops[i], shopDoms[i])
		subject := g.fill(g.pick([]string{"Your order {order}", "Order confirmation", "Your invoice from {shop}", "Your {product} has shipped", "Booking confirmed"}))
		paras := append([]string{g.fill("Hello {first} {last},")}, g.sentences(hamReceipt, 3+g.r.IntN(4))...)
		paras = append(paras, fmt.Sprintf("https://%s/account/orders", shopDoms[i]))
		return corpusMsg{g.message(from, subject, paras, nil, g.r.IntN(2) == 0), false, "receipt"}
	}
}

func (g *gen) spam() corpusMsg {
	kinds := []string{"pharmacy", "prize", "fee", "invest", "phish", "dating", "replica", "loan", "seo", "short", "phish", "short"}
	kind := kinds[g.r.IntN(len(kinds))]
	dom := g.pick(spamDoms)
	var from string
	switch g.r.IntN(4) {
	case 3: // a free mail account, as much spam comes from
		first, last := g.pick(firstNames), g.pick(lastNames)
		from = fmt.Sprintf("%s %s <%s%d@%s>", first, last, strings.ToLower(first), g.r.IntN(99), g.pick(hamDomains[:3]))
	case 0:
		from = fmt.Sprintf("%q <%s%d@%s>", g.fill("{first} {last}"), strings.ToLower(g.pick(lastNames)), g.r.IntN(999), dom)
	case 1:
		from = fmt.Sprintf("%q <noreply@%s>", g.fill(g.pick([]string{"{bank} Support", "Customer Service", "Promotions", "{brand} Outlet", "Winner Dept"})), dom)
	default:
		from = fmt.Sprintf("<%x@%s>", g.r.Uint32(), g.pick(append(spamDoms, hamDomains...)))
	}
	subject := g.fill(g.pick(spamSubjects[kind]))
	paras := g.sentences(spamFamilies[kind], 2+g.r.IntN(3))
	if g.r.IntN(2) == 0 {
		paras = append([]string{g.fill(g.pick([]string{"Dear customer,", "Hello {first},", "Dear friend,", "Attention:"}))}, paras...)
	}
	if g.r.IntN(2) == 0 {
		paras = append(paras, g.fill("To stop receiving these messages click {spamurl}"))
	}
	var extra []string
	if m := g.pick(spamMailer); m != "" {
		extra = append(extra, "X-Mailer: "+m)
	}
	if g.r.IntN(3) == 0 {
		extra = append(extra, fmt.Sprintf("Reply-To: <claims%d@%s>", g.r.IntN(99), g.pick([]string{"gmail.com", "outlook.com", "yandex.ru"})))
	}
	return corpusMsg{g.message(from, subject, paras, extra, g.r.IntN(3) > 0), true, kind}
}

// corpus returns n messages, ham and spam mixed in equal parts, in random order.
func corpus(seed uint64, n int) []corpusMsg {
	g := newGen(seed)
	out := make([]corpusMsg, 0, n)
	for i := 0; i < n; i++ {
		if i%2 == 0 {
			out = append(out, g.ham())
		} else {
			out = append(out, g.spam())
		}
	}
	g.r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func parse(raw []byte) (store.ParsedMessage, error) {
	return message.ParseAt(bytes.NewReader(raw), int64(len(raw)))
}
