"""From the opinion to treatment: a guide of conditions and their treatment options with
indicative prices, the clinics that offer them, and the patient's requests for a treatment plan
that coordinators answer (see docs/treatment.md).

``models`` holds the tables and the shapes of input and output; ``guide`` reads the managed
content in the interface's language; ``editor`` is how coordinators change it; ``seed`` loads it
from ``seed.yaml``; ``requests`` is the treatment-plan request and its statuses; ``panel``
gathers what the case page shows; ``views`` and ``pages`` are the JSON API and the pages.
"""
