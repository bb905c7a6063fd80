"""The built-in web UI, an aiohttp sub-app served under ``/ui/`` beside the admin API.

Adding a page: a module in ``dashboards/pages/`` with a ``routes`` table whose handlers
carry one access decorator from ``dashboards.access`` (``public``, ``signed_in``,
``admins``, ``reviewers``; a handler without one is refused), a template in
``templates/`` extending ``base.html``, and one line in ``dashboards.app.PAGE_MODULES``.
Forms that change anything are POSTs carrying ``{{ csrf_field() }}``; the middlewares in
``dashboards.security`` check the token and the Origin, and set the headers every page gets.
"""
