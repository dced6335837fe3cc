"""Reports inside Airflow's UI: a *Report* tab on every ``borough_report`` run and a *Reports* page.

``plugins/taxiflow_report_views.py`` registers :data:`EXTERNAL_VIEWS` and mounts :func:`create_app`
at :data:`URL_PREFIX`. ``runs`` reads the metadata DB, ``pages`` renders HTML, ``app`` routes and
checks access.
"""

from taxiflow.doors.report_views.app import EXTERNAL_VIEWS, URL_PREFIX, create_app

__all__ = ["EXTERNAL_VIEWS", "URL_PREFIX", "create_app"]
