"""Google adapter: domain-wide delegation, Calendar sync and push, Gmail push, ID-token checks.

* ``client``: ``GoogleClient``, REST calls as domain users (tokens, quotaUser, retries, errors).
* ``events``: Calendar event JSON -> ``services.meetings`` snapshots (pure).
* ``calendar``: ``GoogleCalendar`` (CalendarSource, EventFinder, EventTagWriter).
* ``channels``: ``GoogleCalendarChannels`` (PushChannels over events.watch / channels.stop).
* ``mail``: ``GmailWatch`` (MailWatch) and ``GmailMessages`` (an invitation's iCalUID).
* ``directory``: ``GoogleDirectory`` (the users to watch).
* ``identity``: Google-signed ID tokens (add-on and Pub/Sub requests).
"""
