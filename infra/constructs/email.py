"""Email: the SES identity every e-mail is sent from (``-c senderEmail=… [-c sesIdentity=…]``).

The stack creates the identity (a domain, with Easy DKIM: add the three CNAMEs it outputs to DNS,
or an address, which SES verifies by mail) unless ``-c sesIdentityExists=true`` says it is managed
elsewhere. Senders get ``ses:SendEmail`` / ``ses:SendRawEmail`` on that identity only, with
``ses:FromAddress`` pinned to the sender address.
"""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_ses as ses
from constructs import Construct

from infra.config import DeployConfig


class Email(Construct):
    """The SES sending identity and the one statement that allows sending from it."""

    def __init__(self, scope: Construct, construct_id: str, *, config: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        self.sender = config.sender_email
        self.identity_name = config.ses_identity
        name = self.identity_name
        self.identity_arn = Stack.of(self).format_arn(service="ses", resource="identity", resource_name=name)
        if not config.ses_identity_exists:
            is_address = "@" in name
            identity = ses.EmailIdentity(
                self, "Identity", identity=ses.Identity.email(name) if is_address else ses.Identity.domain(name)
            )
            if not is_address:
                for n in (1, 2, 3):
                    name = getattr(identity, f"dkim_dns_token_name{n}")
                    value = getattr(identity, f"dkim_dns_token_value{n}")
                    CfnOutput(self, f"DkimRecord{n}", value=f"{name} CNAME {value}", description="add to DNS")

    def send_statement(self) -> iam.PolicyStatement:
        """Send from the configured sender through the configured identity, nothing else."""
        return iam.PolicyStatement(
            sid="SendEmailFromSender",
            actions=["ses:SendEmail", "ses:SendRawEmail"],
            resources=[self.identity_arn],
            conditions={"StringEquals": {"ses:FromAddress": self.sender}},
        )
