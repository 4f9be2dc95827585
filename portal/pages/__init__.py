"""The web layer's page builders: what the case page and the coordinator's dashboard show,
gathered from every domain (cases, intake, review, treatment). Routes in the domains' pages
modules call them; nothing below the web layer imports them."""
