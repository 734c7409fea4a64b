package main

import (
	"fmt"
	"time"

	"github.com/m365bridge/m365bridge/bridge/m365sim"
)

// The demo's mailboxes: a shared support mailbox whose Support folder has
// weeks of history (archived on the first sync), a sales user's inbox with
// mail on both sides of its configured cut-off, and the fresh mail that
// arrives while the demo runs.

type demoCustomer struct{ name, addr string }

var demoCustomers = []demoCustomer{
	{"Carol Customer", "carol@fabrikam.example"},
	{"Dan Dubois", "dan.dubois@northwind.example"},
	{"Erin Ólafsdóttir", "erin@tailspin.example"},
	{"Farid Haddad", "farid@adatum.example"},
	{"Grace Kim", "grace.kim@litware.example"},
	{"Hiro Tanaka", "hiro@wingtip.example"},
}

var demoSubjects = []string{
	"Cannot log in after password reset",
	"Invoice 2026-%03d shows the wrong VAT rate",
	"Printer on floor 3 jams on every job",
	"Request: new laptop for onboarding",
	"VPN drops every 10 minutes",
	"Shared calendar not visible on mobile",
	"Réunion annulée — merci de rembourser",
	"Out of toner again",
	"Access to the finance share",
	"Outlook keeps asking for credentials",
}

// demoOldSupport is the Support folder's history: n messages over the
// last weeks, every fourth with an attachment.
func demoOldSupport(now time.Time, n int) []m365sim.NewMessage {
	var out []m365sim.NewMessage
	for i := range n {
		c := demoCustomers[i%len(demoCustomers)]
		subject := demoSubjects[i%len(demoSubjects)]
		if i%len(demoSubjects) == 1 {
			subject = fmt.Sprintf(subject, 100+i)
		}
		m := m365sim.NewMessage{
			Folder:    "Inbox/Support",
			Subject:   subject,
			From:      fmt.Sprintf("%s <%s>", c.name, c.addr),
			Body:      fmt.Sprintf("Hello support,\n\n%s — could you have a look?\n\nThanks,\n%s", subject, c.name),
			MessageID: fmt.Sprintf("<demo-old-%d@%s>", i, domainOf(c.addr)),
			Received:  now.Add(-time.Duration(n-i) * 37 * time.Hour),
			IsRead:    true,
		}
		if i%4 == 0 {
			m.Attachments = []m365sim.NewAttachment{{Name: fmt.Sprintf("screenshot-%d.png", i), ContentType: "image/png", Size: 24 << 10}}
		}
		out = append(out, m)
	}
	return out
}

// demoNewSupport is mail that arrives after the first sync: it becomes new
// tickets. One is a customer's reply to an archived thread, so a receiver
// can thread it; one carries a PDF, one an inline image.
func demoNewSupport(now time.Time) []m365sim.NewMessage {
	return []m365sim.NewMessage{
		{
			Folder: "Inbox/Support", Subject: "Re: " + demoSubjects[0],
			From: "Carol Customer <carol@fabrikam.example>", Body: "It happened again this morning, see the log attached.",
			InReplyTo: "<demo-old-0@fabrikam.example>",
			Headers:   []m365sim.MessageHeader{{Name: "References", Value: "<demo-old-0@fabrikam.example>"}},
			Attachments: []m365sim.NewAttachment{
				{Name: "signin-log.pdf", ContentType: "application/pdf", Size: 180 << 10},
			},
			Received: now,
		},
		{
			Folder: "Inbox/Support", Subject: "Projector in room 2.14 shows a blue screen",
			From: "Hiro Tanaka <hiro@wingtip.example>", HTML: true,
			Body: `<p>This is what we see:</p><p><img src="cid:photo1@wingtip.example" alt="photo"></p><p>Hiro</p>`,
			Attachments: []m365sim.NewAttachment{
				{Name: "photo.jpg", ContentType: "image/jpeg", Size: 40 << 10, ContentID: "photo1@wingtip.example", Inline: true},
			},
			Received: now,
		},
		{
			Folder: "Inbox/Support", Subject: "Automatic reply: Out of office",
			From: "Grace Kim <grace.kim@litware.example>", Body: "I am out of the office until Monday.",
			Headers:  []m365sim.MessageHeader{{Name: "Auto-Submitted", Value: "auto-replied"}},
			Received: now,
		},
	}
}

// demoSales is the sales inbox: some mail before the channel's cut-off
// (archived), some after (new).
func demoSales(cutoff time.Time) []m365sim.NewMessage {
	var out []m365sim.NewMessage
	for i := range 6 {
		c := demoCustomers[(i+2)%len(demoCustomers)]
		when := cutoff.Add(-time.Duration(i+1) * 51 * time.Hour)
		if i >= 4 {
			when = cutoff.Add(time.Duration(i) * 29 * time.Hour)
		}
		out = append(out, m365sim.NewMessage{
			Subject:  fmt.Sprintf("Quote request #%d", 4100+i),
			From:     fmt.Sprintf("%s <%s>", c.name, c.addr),
			Body:     "Could you send us a quote for 20 seats?",
			Received: when,
		})
	}
	return out
}

// demoFresh is the mail injected while the demo runs, to show live pickup.
func demoFresh(now time.Time) m365sim.NewMessage {
	return m365sim.NewMessage{
		Folder: "Inbox/Support", Subject: "URGENT: shop checkout returns error 500",
		From: "Farid Haddad <farid@adatum.example>", Body: "Customers cannot pay since 10 minutes ago.",
		Received: now,
	}
}

func domainOf(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == '@' {
			return addr[i+1:]
		}
	}
	return addr
}
