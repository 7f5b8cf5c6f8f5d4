package activity

// The text the demo generator draws from. It reads like a real apprentice's
// log, and on purpose includes what breaks naive exports: commas, double
// quotes, line breaks, non-ASCII text (é, ü, ñ, emoji, Welsh ŵ, £) and
// values starting with "=", "+", "-" or "@", which spreadsheets take for
// formulas.

// demoTopics are what activities are about, per standard; other standards
// use the ST0787 list.
var demoTopics = map[string][]string{
	"ST0787": {
		"causal loop diagrams", "soft systems methodology", "CATWOE", "rich pictures",
		"the viable system model", "stakeholder mapping", "boundary critique", "system dynamics",
		"leverage points", "critical systems heuristics", "feedback loops", "stock and flow models",
		"the Cynefin framework", "systemic evaluation", "mental models", "double-loop learning",
		"systemic intervention design", "Checkland's SSM, stages 1–7", "wicked problems",
		"emergence and self-organisation",
	},
	"ST0763": {
		"feature engineering", "gradient boosting", "data pipelines", "model evaluation",
		"transformer models", "bias and fairness", "MLOps", "data governance", "A/B testing",
		"time-series forecasting", "vector databases", "GDPR and data ethics",
		"hyperparameter tuning", "explainability (SHAP, LIME)", "data quality checks",
		"reinforcement learning", "causal inference", "anomaly detection", "prompt engineering",
		"synthetic data",
	},
}

// demoTitles are title templates per activity type; {t} is the topic.
var demoTitles = map[string][]string{
	"self_study":      {"Read up on {t}", "Self-study: {t}", "Worked through an online module on {t}", "Notes on {t}, chapter by chapter"},
	"training_course": {"Training course: {t}", "Day 2 of the {t} course", "E-learning on {t}", "Accredited course – {t}"},
	"workshop":        {"Workshop on {t}", "Team workshop – {t}", "Ran a workshop: {t}", "Hands-on lab, {t}"},
	"mentoring":       {"Mentoring session about {t}", "1:1 with mentor on {t}", "Coached a colleague in {t}", "Mentor check-in: {t}"},
	"shadowing":       {"Shadowed a senior practitioner: {t}", "Shadowing the analytics team, {t}", "Sat in on a client call about {t}"},
	"project_work":    {"Applied {t} to the client project", "Sprint work: {t}", "Project deliverable using {t}", "Prototype built around {t}"},
	"research":        {"Researched {t}", "Literature review: {t}", "Compared approaches to {t}", "Case studies of {t}"},
	"conference":      {"Conference talk on {t}", "Meetup: {t}", "Webinar – {t}", "Panel discussion about {t}"},
	"reflection":      {"Reflective log: {t}", "What I learnt about {t}", "Reflection on {t}, week by week", "Lessons learnt: {t}"},
	"other":           {"Community of practice: {t}", "Misc. learning, {t}", "Portfolio tidy-up ({t})", "Study group on {t}"},
}

// demoOddTitles are used now and then instead of a template, and each one
// for one of the first activities, so that even a small data set has them.
var demoOddTitles = []string{
	"=SUM(A1:A3) practice",
	"-- retro notes",
	"@mention review",
	"+1 pairing session",
	`Read "Thinking in Systems", ch. 1–3`,
	"Café-style workshop: naïve models, über-simple diagrams",
	"Mañana planning with the team 🚀",
	"Gweithdy Cymraeg: ŵ, ŷ and data",
	"Budget review (£2,500 training fund)",
	"Two-part session:\nmorning theory, afternoon practice",
	`"Quick wins" stand-up, 15 min`,
	"-1 day to EPA gateway: mock interview",
}

// demoSentences make up descriptions: one to three of them, joined by a
// space or a line break.
var demoSentences = []string{
	"Worked through the examples and wrote up my own summary.",
	"Discussed how this applies to our team's current backlog.",
	"Mapped the main actors, flows and delays on a whiteboard.",
	"Key takeaway: small changes at the right leverage point matter most.",
	"Practised the method on a real problem from work, then compared notes.",
	"Followed the tutorial, adapted it to our data, and documented the steps.",
	`My mentor asked "what would change your mind?", which reframed the problem.`,
	"Read two papers and a blog post; the second paper was the most useful.",
	"Sketched a causal loop diagram with three reinforcing loops, one balancing.",
	"Café discussion with colleagues from the Zürich office – très utile.",
	"Spent £45 on the book; worth it.",
	"Wrote 500 words for my portfolio, with screenshots.",
	"Paired with a data engineer 👩‍💻 on the pipeline.",
	"Señor García's talk covered the history; the Q&A was lively.",
	"Tried the exercise in Welsh too: “gŵr”, “ŵyn”, “dŵr”.",
	"Noted three questions to raise at the next review:\n1) scope, 2) data, 3) risks.",
	"Updated the team wiki page, \"How we model demand\".",
	"Compared results: accuracy 0.87 vs 0.91, precision up by 4%.",
	"Drafted the evidence statement against the KSBs.",
	"Reviewed feedback, then rewrote the introduction.",
	"Emoji-heavy chat summary: 🎯 goals, 📈 metrics, ✅ actions.",
	"Used the naïve approach first, then the refined one.",
}

// demoOddDescriptions start with a formula-like character; like
// demoOddTitles, each is used once early on and then now and then.
var demoOddDescriptions = []string{
	"=1+1 is how the old spreadsheet summed the hours, which is why I rebuilt it.",
	"+44 20 7946 0000 was the dial-in; the recording is on the shared drive.",
	"-5% error after tuning, down from -12% last month.",
	"@team shared the slides, \"final_v3.pptx\", after the session.",
}

// demoNotes are the notes column's values; "" is most common.
var demoNotes = []string{
	"", "", "", "", "", "",
	"Follow up with mentor next week.",
	"-- follow up with mentor",
	"+ add to portfolio",
	"@mentor please review",
	"=B2*0.2 is my OTJ share this month",
	"Evidence: slides, notes and a \"lessons learnt\" doc.",
	"Line one of the note\nLine two, after a break",
	"Très utile 👍",
	"Ask about the £ budget for the next course.",
}

// demoTags are the tags a demo user has.
var demoTags = []string{
	"reading", "portfolio", "EPA prep", "stakeholders", "tools", "team learning", "café chats", "quick win 🚀",
}

// demoLinks are resource links and their titles.
var demoLinks = []struct{ URL, Title string }{
	{"https://www.gov.uk/government/publications/apprenticeship-funding-rules", "Apprenticeship funding rules"},
	{"https://www.instituteforapprenticeships.org/apprenticeship-standards/", "Apprenticeship standards"},
	{"https://en.wikipedia.org/wiki/Systems_thinking", "Systems thinking"},
	{"https://en.wikipedia.org/wiki/Causal_loop_diagram", "Causal loop diagram"},
	{"https://www.open.edu/openlearn/science-maths-technology/computing-ict", "OpenLearn: computing"},
	{"https://scikit-learn.org/stable/user_guide.html", "scikit-learn user guide"},
	{"https://example.org/search?q=feedback,loops&lang=en", "Search: feedback, loops"},
	{"https://example.org/notes/caf%C3%A9-session?page=2", "Café session notes"},
	{"https://docs.python.org/3/tutorial/", "Python tutorial"},
	{"https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s", "Recorded talk"},
	{"https://example.org/papers/2024/systems-review.pdf", "Review paper (PDF)"},
	{"https://example.org/wiki/How_we_model_demand", "Team wiki"},
}
