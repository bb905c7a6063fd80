"""The built-in web UI, an aiohttp sub-app served under ``/ui/`` beside the admin API.

Adding a page: a module in ``dashboards/pages/`` with a ``routes`` table whose handlers
carry one access decorator from ``dashboards.access`` (``public``, ``signed_in``,
``admins``, ``reviewers``; a handler without one is admins-only), a template in
``templates/`` extending ``base.html`` rendered with ``dashboards.render.render`` (which
gives it ``session`` and ``csrf_field()``), and one line in ``dashboards.app.PAGE_MODULES``.
JSON for scripts goes under ``/ui/api/``: refusals there are 401/403 in OpenAI's error
shape instead of a redirect to sign-in.
Forms that change anything are POSTs carrying ``{{ csrf_field() }}``; the middlewares in
``dashboards.security`` check the token and the Origin, and set the headers every page gets.
"""
