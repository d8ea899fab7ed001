"""The pytest plugin (mailout.testing): mail_catcher and mailoutbox, run through pytester."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]


def test_fixtures_in_a_user_test_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import httpx
        import pytest
        import mailout
        from mailout import conf

        def test_mail_catcher(mail_catcher):
            mailout.send_mail("Welcome", "Hello Ana", "site@example.com", ["ana@example.com"])
            mailout.EmailMessage("Other", "x", "site@example.com", ["bo@example.com"],
                                 bcc=["Audit@Example.com"]).send()
            [message] = mail_catcher.wait_for(to="ana@EXAMPLE.com")
            assert message["Subject"] == "Welcome"
            assert message.get_content() == "Hello Ana\\n"
            assert [m["Subject"] for m in mail_catcher.messages()] == ["Welcome", "Other"]
            assert len(mail_catcher.messages(to="Audit@example.com")) == 1
            assert len(mail_catcher.messages(subject="welc")) == 1
            assert mail_catcher.raw(to="ana@example.com")[0].startswith(b"Received: ")
            assert mail_catcher.smtp_port == conf.get("EMAIL_PORT")
            if mail_catcher.http_url:
                api = httpx.get(mail_catcher.http_url + "api/messages").json()
                assert api["total"] == 2
            assert mail_catcher.clear() == 2
            with pytest.raises(TimeoutError, match="1 message"):
                mail_catcher.wait_for(timeout=0.2)

        def test_settings_restored():
            assert conf.get("EMAIL_PORT") == 25

        def test_mailoutbox(mailoutbox):
            mailout.send_mail("Hi", "body", "a@example.com", ["b@example.com"])
            assert [m.subject for m in mailoutbox] == ["Hi"]
            assert mailoutbox is mailout.outbox

        def test_mailoutbox_is_fresh(mailoutbox):
            assert mailoutbox == []
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=4)
