"""The OHIF v3 viewer for specialists: installed from the pinned npm release, served same-origin.

``install`` fetches and verifies the release, ``archive`` unpacks its ``dist/`` safely,
``relocate`` points the prebuilt bundle at the portal's address for it, ``bundle`` reads what is
installed, ``shell`` writes the page and configuration for one case, ``views`` serves them.
"""
