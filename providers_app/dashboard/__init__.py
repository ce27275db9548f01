"""The failover dashboard, in one package (a Django app of its own, so its
templates and static files sit beside its code):

- `reads.py`: what happened over a window, from the database (models and
  selectors only, like a selector);
- `charts.py`: SVG geometry of the charts; `colours.py`: one colour per
  provider, reason and breaker state, on every screen;
- `views.py`: the page and its live fragment; `urls.py`: their URLs (the only
  module that names them); `admin.py`: the admin entry (permission, index);
- `models.py`: the proxy model that lists the page on the admin index;
- `templates/dashboard/`, `static/dashboard/`.
"""
