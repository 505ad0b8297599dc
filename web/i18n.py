"""Danish first, English one click away: the texts of the web app and the language switch."""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from features.catalogue import CATALOGUE
from rules.families import FAMILY_VALUES

LANGUAGES = ("da", "en")
DEFAULT_LANGUAGE = "da"
LANGUAGE_COOKIE = "tidlig_lang"
LOCAL_ZONE = ZoneInfo("Europe/Copenhagen")

TEXTS: dict[str, tuple[str, str]] = {
    # Frame
    "app.tagline": ("Tidlig indsats i kommunens sociale arbejde", "Early intervention in the municipality's social services"),
    "skip": ("Gå til indhold", "Skip to content"),
    "nav.flags": ("Markeringer", "Flags"),
    "nav.team": ("Team", "Team"),
    "nav.audit": ("Revisionslog", "Audit log"),
    "nav.models": ("Modeller", "Models"),
    "nav.rules": ("Regler", "Rules"),
    "nav.quality": ("Datakvalitet", "Data quality"),
    "nav.access": ("Indsigtsanmodning", "Access request"),
    "nav.users": ("Brugere", "Users"),
    "nav.main": ("Hovedmenu", "Main menu"),
    "logout": ("Log ud", "Log out"),
    "signed_in_as": ("Logget ind som", "Signed in as"),
    "switch_language": ("English", "Dansk"),
    "switch_language.label": ("Skift sprog til engelsk", "Switch language to Danish"),
    "footer.principle": (
        "Tidlig markerer; et menneske beslutter. Alle opslag og beslutninger logges.",
        "Tidlig flags; a person decides. Every view and decision is logged.",
    ),
    "role.caseworker": ("Rådgiver", "Caseworker"),
    "role.teamlead": ("Teamleder", "Team lead"),
    "role.auditor": ("Revisor", "Auditor"),
    "role.admin": ("Administrator", "Administrator"),
    # Login
    "login.title": ("Log ind", "Log in"),
    "login.intro": ("Log ind med din medarbejderkonto.", "Log in with your staff account."),
    "login.username": ("Brugernavn", "Username"),
    "login.password": ("Adgangskode", "Password"),
    "login.submit": ("Log ind", "Log in"),
    "login.failed": ("Brugernavn eller adgangskode er forkert.", "The username or password is wrong."),
    "login.throttled": (
        "For mange mislykkede forsøg. Vent {wait}, og prøv så igen med den rigtige adgangskode.",
        "Too many failed attempts. Wait {wait}, then try again with the right password.",
    ),
    "duration.second": ("1 sekund", "1 second"),
    "duration.seconds": ("{count} sekunder", "{count} seconds"),
    "duration.minute": ("1 minut", "1 minute"),
    "duration.minutes": ("{count} minutter", "{count} minutes"),
    "login.sso": (
        "Kommunens fælles login (single sign-on) kan tilsluttes senere.",
        "The municipality's single sign-on can be connected later.",
    ),
    "logged_out": ("Du er logget ud.", "You are logged out."),
    # Errors
    "error.title": ("Der opstod en fejl", "Something went wrong"),
    "error.403.title": ("Du har ikke adgang til denne side", "You do not have access to this page"),
    "error.403.text": (
        "Din rolle giver ikke adgang her. Kontakt din teamleder eller administrator, hvis du mener, det er en fejl.",
        "Your role does not give access here. Contact your team lead or administrator if you think this is wrong.",
    ),
    "error.404.title": ("Siden findes ikke", "Page not found"),
    "error.404.text": ("Tjek adressen, eller gå tilbage til forsiden.", "Check the address or go back to the front page."),
    "error.csrf": (
        "Formularen var udløbet eller kom ikke fra Tidlig. Indlæs siden igen, og prøv en gang til.",
        "The form had expired or did not come from Tidlig. Reload the page and try again.",
    ),
    "error.http": (
        "Siden kan ikke bruges sådan. Gå tilbage, og prøv igen fra menuen.",
        "The page cannot be used like this. Go back and try again from the menu.",
    ),
    "back_home": ("Til forsiden", "To the front page"),
    "form.errors": ("Der er fejl i formularen", "There are errors in the form"),
    # Flag list
    "flags.title": ("Markeringer til {team}", "Flags for {team}"),
    "flags.intro": (
        "Borgere, som Tidlig foreslår, at teamet ser på. Listen er sorteret efter prioritet. Du beslutter, hvad der skal ske.",
        "Citizens Tidlig suggests the team looks at, in priority order. You decide what happens.",
    ),
    "flags.filters": ("Filtrér listen", "Filter the list"),
    "flags.status": ("Status", "Status"),
    "flags.target": ("Målgruppe", "Group"),
    "flags.priority": ("Prioritet", "Priority"),
    "flags.as_of": ("Kørselsdato", "Run date"),
    "flags.any": ("Alle", "All"),
    "flags.apply": ("Vis", "Show"),
    "flags.queue": ("Vis også kø ud over kapaciteten", "Also show the queue beyond capacity"),
    "flags.count": ("{count} markeringer", "{count} flags"),
    "flags.none": ("Ingen markeringer matcher filtrene.", "No flags match the filters."),
    "flags.person": ("Borger", "Citizen"),
    "flags.score": ("Score", "Score"),
    "flags.reason": ("Hovedårsag", "Main reason"),
    "flags.caption": ("Markeringer sorteret efter prioritet", "Flags in priority order"),
    "flags.open": ("Åbn", "Open"),
    "flags.queued": ("I kø", "Queued"),
    "page.previous": ("Forrige side", "Previous page"),
    "page.next": ("Næste side", "Next page"),
    "page.of": ("Side {page} af {pages}", "Page {page} of {pages}"),
    "status.open": ("Åben", "Open"),
    "status.accepted": ("Kontakt oprettet", "Contact opened"),
    "status.dismissed": ("Afvist", "Dismissed"),
    "status.deferred": ("Udsat", "Deferred"),
    "target.child": ("Barn", "Child"),
    "target.adult": ("Voksen", "Adult"),
    "target.family": ("Familie", "Family"),
    "status.suppressed": ("Frasorteret", "Suppressed"),
    "flags.due_again": ("Udsat til {date} – nu aktuel igen", "Deferred until {date} – due again now"),
    "flag.reason_person": ("Gælder familiemedlem", "Concerns family member"),
    "flag.suppressed": (
        "Markeringen blev holdt uden for teamets liste af en frasorteringsregel:",
        "A suppression rule kept this flag off the team's list:",
    ),
    "priority.1": ("Høj", "High"),
    "priority.2": ("Middel", "Medium"),
    "priority.3": ("Lav", "Low"),
    # Flag detail
    "flag.title": ("Markering {id}", "Flag {id}"),
    "flag.back": ("Tilbage til listen", "Back to the list"),
    "flag.person": ("Borger (pseudonym)", "Citizen (pseudonym)"),
    "flag.team": ("Team", "Team"),
    "flag.as_of": ("Kørselsdato", "Run date"),
    "flag.rank": ("Placering på teamets liste", "Position on the team's list"),
    "flag.legal_duty": ("Lovpligt: på listen uanset teamets kapacitet.", "A legal duty: on the list whatever the team's capacity."),
    "flag.rank_queued": ("{rank} (i kø ud over kapaciteten)", "{rank} (queued beyond capacity)"),
    "flag.score": ("Risikoscore", "Risk score"),
    "flag.score_value": ("{score} af 20", "{score} of 20"),
    "flag.score_none": ("Ikke beregnet for denne borger", "Not calculated for this citizen"),
    "flag.probability": ("Modellens sandsynlighed: {p}", "Model probability: {p}"),
    "flag.score_family": ("Højeste risikoscore i familien", "Highest risk score in the family"),
    "flag.members": ("Hvem markeringen gælder", "Who the flag is about"),
    "flag.members_intro": (
        "Hvert familiemedlems egen score. Alder er baggrund, ikke et signal.",
        "Each family member's own score. Age is context, not a signal.",
    ),
    "flag.member": ("Person (pseudonym)", "Person (pseudonym)"),
    "flag.age": ("Alder", "Age"),
    "flag.age_value": ("{age} år", "{age} years"),
    "flag.member_score": ("Egen risikoscore", "Own risk score"),
    "flag.member_risk": ("Hvad scoren betyder", "What the score means"),
    "flag.signal_person": ("Gælder", "Concerns"),
    "flag.model": ("Modelversion", "Model version"),
    "flag.rules_version": ("Regelversion", "Rules version"),
    "flag.why": ("Hvorfor er borgeren markeret?", "Why was this citizen flagged?"),
    "flag.rule": ("Regel", "Rule"),
    "flag.values": ("Værdier, da reglen blev opfyldt", "Values when the rule fired"),
    "flag.signals": ("De vigtigste signaler", "The top signals"),
    "flag.signals_intro": (
        "Det, der for denne person hæver scoren i forhold til et typisk barn, sagt med almindelige ord.",
        "What raises this person's score above a typical child's, in plain words.",
    ),
    "flag.sources": ("Kilderne bag signalerne", "The sources behind the signals"),
    "flag.sources_intro": (
        "Registrene, signalerne er beregnet fra, og perioden, der blev set på. Kun oplysninger, kommunen kendte før kørselsdatoen, er brugt. Selve registreringerne findes i fagsystemerne.",
        "The registers the signals were computed from, and the period looked at. Only what the municipality knew before the run date was used. The records themselves are in the source systems.",
    ),
    "flag.source": ("Kilde", "Source"),
    "flag.period": ("Periode", "Period"),
    "flag.period_all": ("Al kendt historik til {end}", "All known history up to {end}"),
    "flag.owner": ("Dataejer", "Data owner"),
    "flag.legal_basis": ("Retsgrundlag", "Legal basis"),
    "flag.signal": ("Signal", "Signal"),
    "flag.evidence": ("Registreringerne bag ({count})", "The records behind this ({count})"),
    "flag.register": ("Register", "Register"),
    "flag.event_date": ("Hændelsesdato", "Event date"),
    "flag.known_date": ("Kendt af kommunen", "Known to the municipality"),
    "flag.history": ("Beslutninger", "Decisions"),
    "flag.no_decisions": ("Der er endnu ikke truffet en beslutning.", "No decision has been made yet."),
    "flag.decide": ("Din beslutning", "Your decision"),
    "flag.decide_intro": (
        "Tidlig beslutter ikke noget selv. Vælg, hvad der skal ske, og skriv kort hvorfor.",
        "Tidlig decides nothing by itself. Choose what happens and say briefly why.",
    ),
    "flag.decide_legend": ("Hvad skal der ske?", "What happens next?"),
    "decision.accept": ("Opret kontakt om tidlig indsats", "Open an early-intervention contact"),
    "decision.accept.hint": ("Borgeren kontaktes, og en tidlig indsats overvejes.", "The citizen is contacted and early help is considered."),
    "decision.dismiss": ("Afvis markeringen", "Dismiss the flag"),
    "decision.dismiss.hint": ("Kræver en årsag og en kort begrundelse.", "Needs a reason code and a short explanation."),
    "decision.defer": ("Udsæt til en dato", "Defer to a date"),
    "decision.defer.hint": ("Markeringen vises igen på datoen. Kræver en begrundelse.", "The flag comes back on the date. Needs an explanation."),
    "decision.accept.done": ("Kontakt oprettet", "Contact opened"),
    "decision.dismiss.done": ("Afvist", "Dismissed"),
    "decision.defer.done": ("Udsat til {date}", "Deferred to {date}"),
    "decision.reason_code": ("Årsag til afvisning", "Reason for dismissing"),
    "decision.reason_text": ("Begrundelse", "Explanation"),
    "decision.reason_text.hint": (
        "Skriv ikke CPR-numre. Begrundelsen kan ses af borgeren ved en indsigtsanmodning.",
        "Do not write CPR numbers. The citizen can see the explanation through an access request.",
    ),
    "decision.defer_until": ("Se på markeringen igen den", "Look at the flag again on"),
    "decision.submit": ("Gem beslutning", "Save decision"),
    "decision.saved": ("Beslutningen er gemt og logget.", "The decision is saved and logged."),
    "decision.choose": ("Vælg en beslutning.", "Choose a decision."),
    "decision.need_code": ("Vælg en årsag til afvisningen.", "Choose a reason for dismissing."),
    "decision.need_text": ("Skriv en begrundelse.", "Write an explanation."),
    "decision.need_date": ("Vælg en dato i fremtiden.", "Choose a date in the future."),
    "decision.no_cpr": (
        "Begrundelsen ser ud til at indeholde et CPR-nummer. Beskriv borgeren uden det.",
        "The explanation seems to contain a CPR number. Describe the citizen without it.",
    ),
    "decision.code_only_dismiss": ("En årsag hører kun til en afvisning.", "A reason code only goes with dismissing."),
    "decision.date_only_defer": ("En dato hører kun til en udsættelse.", "A date only goes with deferring."),
    "decision.conflict": (
        "Markeringen er allerede afgjort af {who} {at} ({decision}). Din beslutning er ikke gemt: læs afgørelsen nedenfor, før du beslutter igen.",
        "This flag was already decided by {who} at {at} ({decision}). Your decision was not saved: read that decision below before you decide again.",
    ),
    "decision.changed": (
        "Markeringen er ændret, siden du åbnede den. Din beslutning er ikke gemt: se den igen, før du beslutter.",
        "The flag changed since you opened it. Your decision was not saved: look at it again before you decide.",
    ),
    "decision.by": ("{who}, {at}", "{who}, {at}"),
    "reason.known_case": ("Borgeren har allerede en sag eller indsats", "The citizen already has a case or support"),
    "reason.no_concern": ("Ingen bekymring efter gennemgang", "No concern after review"),
    "reason.data_error": ("Fejl i data", "Error in the data"),
    "reason.moved": ("Borgeren er fraflyttet kommunen", "The citizen has moved away"),
    "reason.other": ("Anden årsag", "Other reason"),
    "notes.title": ("Noter", "Notes"),
    "notes.none": ("Ingen noter endnu.", "No notes yet."),
    "notes.add": ("Tilføj note", "Add note"),
    "notes.text": ("Note", "Note"),
    "notes.hint": ("Noten kan ses af teamet og af borgeren ved en indsigtsanmodning. Skriv ikke CPR-numre.", "The team and, through an access request, the citizen can read the note. Do not write CPR numbers."),
    "notes.saved": ("Noten er gemt.", "The note is saved."),
    "not_in_team": ("Denne markering hører til et andet team.", "This flag belongs to another team."),
    "queued_for_lead": ("Denne markering venter i teamets kø; kun teamlederen kan se den.", "This flag waits in the team's queue; only the team lead can see it."),
    # Team
    "team.title": ("Teamets belastning: {team}", "Team load: {team}"),
    "team.capacity": ("Ugentlig kapacitet", "Weekly capacity"),
    "team.capacity_hint": ("Hvor mange nye markeringer teamet kan tage op om ugen.", "How many new flags the team can take up in a week."),
    "team.capacity_save": ("Gem kapacitet", "Save capacity"),
    "team.capacity_saved": ("Kapaciteten er gemt.", "The capacity is saved."),
    "team.capacity_bad": ("Skriv et helt tal mellem 0 og 1000.", "Enter a whole number between 0 and 1000."),
    "team.capacity_changed_by": ("Senest ændret af {who} {at}", "Last changed by {who} {at}"),
    "team.latest": ("Seneste kørsel {date}", "Latest run {date}"),
    "team.in_capacity": ("Inden for kapaciteten", "Within capacity"),
    "team.in_queue": ("I kø", "Queued"),
    "team.open": ("Åbne i alt", "Open in total"),
    "team.deferred": ("Udsatte", "Deferred"),
    "team.decided_7d": ("Beslutninger de seneste 7 dage", "Decisions in the past 7 days"),
    "team.queue": ("Køen ud over kapaciteten", "The queue beyond capacity"),
    "team.queue_none": ("Der er ingen i kø.", "Nobody is queued."),
    "team.members": ("Teamets medlemmer", "Team members"),
    "team.below_capacity": ("Under kapaciteten denne uge", "Below capacity this week"),
    "team.cut": ("Ugens rangering og kapacitetens grænse", "This week's ranking and the capacity cut"),
    "team.cut_lead": ("Kørslen {date} rangerede teamets markeringer efter risiko og hastende regler og skar ved kapaciteten.", "The run of {date} ranked the team's flags by risk and urgent rules and cut at the capacity."),
    "team.cut_candidates": ("Rejst af reglerne", "Raised by the rules"),
    "team.cut_shown": ("På teamets liste", "On the team's list"),
    "team.cut_legal_duty": ("Heraf lovpligtige ud over rangeringen", "Of these, legal duties whatever their rank"),
    "team.cutoff_score": ("Grænsescore (den sidste på listen)", "Cut-off score (the last on the list)"),
    "team.cutoff_none": ("Ingen grænse: alle kom med", "No cut-off: all fit"),
    "team.cutoff_legal_duty": ("Lovpligtige markeringer fyldte kapaciteten", "Legal duties filled the capacity"),
    "team.cut_hint": (
        "Dem under kapaciteten er ikke markeringer, og ingen skal handle på dem; de gemmes, så det kan efterprøves, hvem der ikke kom med. Grænsen følger af kapaciteten: hæv kapaciteten, og den falder.",
        "Those below capacity are not flags and nobody is asked to act on them; they are kept so that who was left out can be checked. The cut-off follows from the capacity: raise the capacity and it falls.",
    ),
    "team.cut_none": ("Ingen kørsel har endnu rangeret teamets markeringer.", "No run has ranked the team's flags yet."),
    "team.routing_note": (
        "Den næste natlige kørsel fordeler markeringer efter denne kapacitet.",
        "The next nightly run routes flags within this capacity.",
    ),
    # Audit
    "audit.title": ("Revisionslog", "Audit log"),
    "audit.intro": (
        "Alle kørsler, opslag, beslutninger og ændringer. Loggen kan kun tilføjes til, og hver hændelse er kædet til den forrige med en hashværdi.",
        "Every run, view, decision and change. The log is append-only, and each event is chained to the one before by a hash.",
    ),
    "audit.verify": ("Kontrollér hashkæden", "Verify the hash chain"),
    "audit.ok": ("Loggen er intakt: {count} hændelser kontrolleret, hashkæden holder.", "The log is intact: {count} events checked, the hash chain holds."),
    "audit.broken": ("Loggen er BRUDT ved hændelse {seq}: {problem}", "The log is BROKEN at event {seq}: {problem}"),
    "audit.kind": ("Hændelse", "Event"),
    "audit.actor": ("Aktør", "Actor"),
    "audit.person": ("Borger (pseudonym)", "Citizen (pseudonym)"),
    "audit.from": ("Fra dato", "From date"),
    "audit.to": ("Til dato", "To date"),
    "audit.seq": ("Nr.", "No."),
    "audit.at": ("Tidspunkt", "Time"),
    "audit.details": ("Detaljer", "Details"),
    "audit.hash": ("Hash", "Hash"),
    "audit.caption": ("Hændelser, nyeste først", "Events, newest first"),
    "audit.none": ("Ingen hændelser matcher filtrene.", "No events match the filters."),
    # Models, rules, data quality
    "models.title": ("Modeller", "Models"),
    "models.intro": (
        "Registrerede modelversioner med modelkort og fairnessrapporter. En ny model tages kun i brug, når et menneske godkender det.",
        "Registered model versions with model cards and fairness reports. A new model is used only once a person approves it.",
    ),
    "models.none": ("Der er ikke registreret nogen modeller endnu.", "No models are registered yet."),
    "models.unavailable": ("Modelregistret kunne ikke læses: {error}", "The model registry could not be read: {error}"),
    "models.version": ("Version", "Version"),
    "models.aliases": ("Status", "Status"),
    "models.created": ("Oprettet", "Created"),
    "models.metrics": ("Målinger", "Metrics"),
    "models.params": ("Parametre", "Parameters"),
    "models.tags": ("Mærker", "Tags"),
    "models.card": ("Modelkort", "Model card"),
    "models.fairness": ("Fairnessrapport", "Fairness report"),
    "models.reports_none": ("Ingen modelkort eller fairnessrapport er gemt for denne version.", "No model card or fairness report is stored for this version."),
    "models.flags": ("Markeringer med denne version", "Flags with this version"),
    "models.deployed": ("Listen, teamene ser", "The list teams see"),
    "models.deployed_hint": (
        "Natkørslen genafspillet uge for uge ({dates} datoer) med regler, undertrykkelse, familiesammenlægning og teamenes kapacitet, "
        "målt på børn, der stadig boede i kommunen, mod det følgende års støtteforanstaltninger. Intervaller er 95 %.",
        "The nightly run replayed week by week ({dates} dates) with rules, suppression, family dedup and the teams' capacity, "
        "measured on children who still lived in the municipality against the following year's support measures. Intervals are 95%.",
    ),
    "models.list": ("Liste", "List"),
    "models.precision_at_capacity": ("Præcision ved kapacitet", "Precision at capacity"),
    "models.recall_at_capacity": ("Andel fundet ved kapacitet", "Recall at capacity"),
    "models.list.deployed": ("Den udrullede liste", "The deployed list"),
    "models.list.model": ("Modellens top-k", "The model's top-k"),
    "models.list.points": ("Pointreglen", "The points rule"),
    "models.list.oracle": ("Den sande risiko (syntetiske data)", "The true risk (synthetic data)"),
    "models.gate": ("Fairnessport for listen", "Fairness gate of the list"),
    "models.gate.passed": ("bestået", "passed"),
    "models.gate.failed": ("ikke bestået", "failed"),
    "models.gate.not_enough_data": ("for få data til at vurdere (blokerer godkendelse)", "not enough data to judge (blocks promotion)"),
    "models.gate.unknown": ("ikke registreret", "not recorded"),
    "rules.title": ("Regler og regelversioner", "Rules and rule versions"),
    "rules.intro": (
        "Reglerne, der rejser markeringer, i den version, der er i brug nu, og ændringerne mellem versionerne.",
        "The rules that raise flags, in the version in use now, and the changes between versions.",
    ),
    "rules.current": ("Gældende version {version}", "Current version {version}"),
    "rules.rationale": ("Begrundelse", "Rationale"),
    "rules.owner": ("Ejer", "Owner"),
    "rules.condition": ("Betingelse", "Condition"),
    "rules.versions": ("Registrerede versioner", "Recorded versions"),
    "rules.diff": ("Ændringer fra {old} til {new}", "Changes from {old} to {new}"),
    "rules.no_diff": ("Kun én version er registreret; der er ingen ændringer at vise.", "Only one version is recorded; there are no changes to show."),
    "rules.compare": ("Sammenlign", "Compare"),
    "rules.old": ("Fra version", "From version"),
    "rules.new": ("Til version", "To version"),
    "rules.recorded": ("Registreret", "Recorded"),
    "quality.title": ("Datakvalitet pr. kørsel", "Data quality per run"),
    "quality.intro": (
        "For hver kørsel: hvor mange rækker hver kilde leverede, hvor mange der var gyldige, og hvor mange der blev sat i karantæne med en årsag. Intet forsvinder i stilhed.",
        "For each run: how many rows each source delivered, how many were valid and how many were quarantined with a reason. Nothing is dropped silently.",
    ),
    "quality.run": ("Kørsel", "Run"),
    "quality.none": ("Der er ingen kørsler endnu.", "There are no runs yet."),
    "quality.source": ("Kilde", "Source"),
    "quality.rows_in": ("Rækker ind", "Rows in"),
    "quality.rows_valid": ("Gyldige", "Valid"),
    "quality.rows_quarantined": ("I karantæne", "Quarantined"),
    "quality.reasons": ("Karantæne: de hyppigste årsager", "Quarantine: the most frequent reasons"),
    "quality.data_docs": ("Åbn Data Docs (Great Expectations' valideringsrapporter)", "Open Data Docs (Great Expectations' validation reports)"),
    "quality.no_data_docs": ("Data Docs er ikke bygget på denne server.", "Data Docs are not built on this server."),
    "quality.status": ("Status", "Status"),
    "quality.flags": ("Markeringer", "Flags"),
    "quality.failed_at": ("Fejlede i trinnet", "Failed at the step"),
    "run.status.running": ("I gang", "Running"),
    "run.status.completed": ("Gennemført", "Completed"),
    "run.status.failed": ("Fejlet", "Failed"),
    "run.status.skipped": ("Sprunget over (allerede kørt)", "Skipped (already run)"),
    "run.flow.nightly": ("Natlig kørsel", "Nightly run"),
    "run.flow.retrain": ("Gentræning af modellen", "Model retraining"),
    "run.flow.data-quality": ("Datakvalitetskontrol", "Data-quality check"),
    # Citizen access
    "access.title": ("Indsigtsanmodning", "Access request"),
    "access.intro": (
        "En borger har ret til at se alt, Tidlig har om dem, hvorfor de er markeret, og hvem der har set deres oplysninger (databeskyttelsesforordningen art. 15). Udtrækket logges.",
        "A citizen has the right to see everything Tidlig holds on them, why they were flagged, and who has seen their data (GDPR art. 15). The export is logged.",
    ),
    "access.person": ("CPR-nummer eller pseudonym", "CPR number or pseudonym"),
    "access.person_hint": (
        "CPR-nummeret omsættes til borgerens pseudonym og gemmes ikke.",
        "The CPR number is turned into the citizen's pseudonym and is not stored.",
    ),
    "access.reference": ("Journalnummer for anmodningen", "Case number of the request"),
    "access.reference_hint": ("Så udtrækket kan knyttes til borgerens henvendelse.", "So the export can be matched to the citizen's letter."),
    "access.submit": ("Lav udtræk", "Make the export"),
    "access.json": ("Hent som JSON", "Download as JSON"),
    "access.print": ("Udskriv", "Print"),
    "access.bad_person": (
        "Skriv et CPR-nummer (DDMMÅÅ-XXXX) eller et pseudonym på 16 tegn (0-9, a-f).",
        "Enter a CPR number (DDMMYY-XXXX) or a 16-character pseudonym (0-9, a-f).",
    ),
    "access.need_reference": ("Skriv anmodningens journalnummer.", "Enter the request's case number."),
    "access.no_key": (
        "Pseudonymnøglen findes ikke på denne server, så et CPR-nummer kan ikke slås op. Brug pseudonymet.",
        "The pseudonym key is not on this server, so a CPR number cannot be looked up. Use the pseudonym.",
    ),
    "access.report_title": ("Det har Tidlig om dig", "What Tidlig holds on you"),
    "access.made": ("Udtræk lavet {at} af {who}, journalnummer {reference}.", "Export made {at} by {who}, case number {reference}."),
    "access.what_is_tidlig": (
        "Tidlig samler tegn fra kommunens registre, så en rådgiver kan tilbyde hjælp tidligt. Tidlig træffer ingen afgørelser; det gør en rådgiver.",
        "Tidlig brings together signs from the municipality's registers so a caseworker can offer help early. Tidlig makes no decisions; a caseworker does.",
    ),
    "access.flags": ("Markeringer", "Flags"),
    "access.no_flags": ("Tidlig har ingen markeringer af dig.", "Tidlig holds no flags on you."),
    "access.accesses": ("Hvem har set eller behandlet dine oplysninger", "Who has seen or handled your data"),
    "access.no_accesses": ("Ingen har set dine oplysninger i Tidlig.", "Nobody has seen your data in Tidlig."),
    "access.sources": ("Registre, Tidlig bruger, og retsgrundlaget", "Registers Tidlig uses, and the legal basis"),
    "access.purpose": ("Formål", "Purpose"),
    "access.purpose_review": ("Vurdering af markeringen", "Review of the flag"),
    # Admin
    "users.title": ("Brugere og teams", "Users and teams"),
    "users.add": ("Opret bruger", "Add user"),
    "users.username": ("Brugernavn", "Username"),
    "users.name": ("Navn", "Name"),
    "users.role": ("Rolle", "Role"),
    "users.team": ("Team", "Team"),
    "users.no_team": ("Intet team (revisor eller administrator)", "No team (auditor or administrator)"),
    "users.password": ("Første adgangskode", "Initial password"),
    "users.password_hint": ("Mindst 12 tegn. Giv den til personen ad en sikker vej.", "At least 12 characters. Hand it over securely."),
    "users.created": ("Brugeren {name} er oprettet.", "The user {name} is created."),
    "users.active": ("Aktiv", "Active"),
    "users.lock": ("Spær", "Lock"),
    "users.unlock": ("Genåbn", "Unlock"),
    "users.locked": ("Spærret", "Locked"),
    "users.not_self": ("Du kan ikke spærre din egen konto; bed en anden administrator.", "You cannot lock your own account; ask another administrator."),
    "users.teams": ("Teams", "Teams"),
    "users.department": ("Afdeling", "Department"),
    "yes": ("Ja", "Yes"),
    "no": ("Nej", "No"),
}

# What each kind of audit event is called. Apart from TEXTS: "login.failed" is both an event and
# the login page's error, and the audit log showed a failed login as "wrong username or password".
KIND_TEXTS: dict[str, tuple[str, str]] = {
    "run.started": ("Kørsel startet", "Run started"),
    "run.finished": ("Kørsel afsluttet", "Run finished"),
    "run.failed": ("Kørsel fejlet", "Run failed"),
    "source.validated": ("Kilde valideret", "Source validated"),
    "delivery.accepted": ("Ufuldstændigt eller gammelt udtræk godkendt", "Incomplete or old extract accepted"),
    "model.registered": ("Model registreret", "Model registered"),
    "model.promoted": ("Model taget i brug", "Model promoted"),
    "flag.created": ("Markering oprettet", "Flag created"),
    "flag.viewed": ("Markering set", "Flag viewed"),
    "flag.decided": ("Beslutning truffet", "Decision made"),
    "flag.list_viewed": ("Liste over markeringer set", "Flag list viewed"),
    "flag.note_added": ("Note tilføjet", "Note added"),
    "login.succeeded": ("Logget ind", "Logged in"),
    "login.failed": ("Mislykket login", "Failed login"),
    "audit.viewed": ("Revisionslog set", "Audit log viewed"),
    "audit.verified": ("Hashkæde kontrolleret", "Hash chain verified"),
    "citizen.access_exported": ("Indsigtsudtræk lavet", "Access request exported"),
    "team.capacity_changed": ("Kapacitet ændret", "Capacity changed"),
    "team.capacity_cut": ("Ugens rangering skåret ved kapaciteten", "Week's ranking cut at capacity"),
    "user.created": ("Bruger oprettet", "User created"),
    "user.status_changed": ("Bruger spærret eller genåbnet", "User locked or unlocked"),
    "rules.changed": ("Regler ændret", "Rules changed"),
    "model.promotion_refused": ("Model afvist til brug", "Model promotion refused"),
    "model.gate_overridden": ("Fairnesskrav tilsidesat", "Fairness gate overridden"),
    "model.candidate_rejected": ("Modelkandidat afvist", "Model candidate rejected"),
    "retention.applied": ("Data slettet efter opbevaringsfristen", "Data past its retention deleted"),
    "retention.results_deleted": ("Gemte kørselsresultater slettet", "Stored run results deleted"),
}

# What a feature in a reason's values is, for readers who don't know the column names.
# What pages call a value: each feature and family value carries its own label; the score and age are no feature.
FEATURE_LABELS: dict[str, tuple[str, str]] = {
    **{f.name: (f.label["da"], f.label["en"]) for f in CATALOGUE},
    **{v.name: (v.label["da"], v.label["en"]) for v in FAMILY_VALUES},
    "score": ("Modellens risikoscore (1-20)", "The model's risk score (1-20)"),
    "age_years": ("Alder", "Age"),
}

SECTOR_TEXTS: dict[str, tuple[str, str]] = {
    "population": ("Folkeregister", "Population"),
    "school": ("Skole", "School"),
    "social": ("Socialområdet", "Social services"),
    "health": ("Sundhed", "Health"),
    "employment": ("Beskæftigelse", "Employment"),
    "housing": ("Bolig", "Housing"),
}


def register_title(name: str, language: str) -> str:
    """A register's title in the language; its name when the registry cannot be read."""
    source = registry().get(name)
    return source.title_in(language) if source else name


@lru_cache(maxsize=1)
def registry() -> dict[str, Any]:
    """The source registry, read once."""
    from sources.registry import load_registry

    try:
        return load_registry()
    except Exception:  # a broken registry file must not hide why a person was flagged
        return {}


def text(key: str, language: str, **values: Any) -> str:
    """The page text for a key in the language, with {placeholders} filled; an unknown key shows itself."""
    pair = TEXTS.get(key)
    if pair is None:
        return key
    template = pair[1] if language == "en" else pair[0]
    return template.format(**values) if values else template


def kind_text(kind: str, language: str) -> str:
    """What an audit event of this kind is, in the language; kept apart from page texts, whose keys may coincide."""
    return pick(KIND_TEXTS.get(kind), language, kind)


def pick(pair: tuple[str, str] | None, language: str, fallback: str = "") -> str:
    """One language's half of a (da, en) pair."""
    if pair is None:
        return fallback
    return pair[1] if language == "en" else pair[0]


def language_of(request: Request) -> str:
    """The language chosen by the cookie, Danish when none was chosen."""
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def format_date(value: date | None, language: str) -> str:
    """A date as 1. november 2026 / 1 November 2026."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.date()
    months_da = ["januar", "februar", "marts", "april", "maj", "juni", "juli", "august", "september", "oktober", "november", "december"]
    if language == "en":
        return f"{value.day} {value.strftime('%B')} {value.year}"
    return f"{value.day}. {months_da[value.month - 1]} {value.year}"


def format_datetime(value: datetime | None, language: str) -> str:
    """A timestamp in Danish local time: 1. november 2026 kl. 14.05."""
    if value is None:
        return ""
    local = value.astimezone(LOCAL_ZONE)
    if language == "en":
        return f"{format_date(local.date(), language)}, {local:%H:%M}"
    return f"{format_date(local.date(), language)} kl. {local:%H.%M}"


def format_number(value: float | int | None, language: str, decimals: int = 0) -> str:
    """1.234,5 in Danish, 1,234.5 in English."""
    if value is None:
        return "–"
    text_value = f"{value:,.{decimals}f}"
    if language == "da":
        text_value = text_value.translate(str.maketrans({",": ".", ".": ","}))
    return text_value


def format_duration(seconds: int, language: str) -> str:
    """A wait as people say it: 1 sekund, 40 sekunder, 3 minutter (rounded up to the minute from one minute)."""
    if seconds < 60:
        return text("duration.second", language) if seconds == 1 else text("duration.seconds", language, count=seconds)
    minutes = -(-seconds // 60)
    return text("duration.minute", language) if minutes == 1 else text("duration.minutes", language, count=minutes)


def safe_next(target: str | None, default: str = "/") -> str:
    """A local path to go back to; anything pointing elsewhere is replaced by the default."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


router = APIRouter()


@router.get("/language/{language}", include_in_schema=False)
def switch_language(language: str, request: Request, next: str | None = None) -> RedirectResponse:
    """Set the language cookie and go back to the page the user was on."""
    response = RedirectResponse(safe_next(next), status_code=303)
    if language in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE, language, max_age=365 * 24 * 3600, httponly=True, samesite="lax",
            secure=request.app.state.secure_cookies,
        )
    return response
