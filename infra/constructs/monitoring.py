"""Monitoring: the alarm topic, each function's error-rate alarm and each dead-letter queue's depth alarm.

The topic is encrypted with its own customer-managed key (CloudWatch may use it to publish) and
refuses non-TLS publishers; ``-c alarmEmail=ops@…`` subscribes an address.
"""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.config import DeployConfig

PERIOD = Duration.minutes(5)


class Monitoring(Construct):
    """The alarm topic and the alarm factories every capability uses."""

    def __init__(self, scope: Construct, construct_id: str, *, config: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.key = kms.Key(
            self,
            "TopicKey",
            description="mentor-connections: encrypts the alarm topic",
            enable_key_rotation=True,
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        self.topic = sns.Topic(self, "Alarms", master_key=self.key, enforce_ssl=True)
        if config.alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        self._action = actions.SnsAction(self.topic)

    def _notify(self, alarm: cloudwatch.Alarm) -> cloudwatch.Alarm:
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)
        return alarm

    def error_rate_alarm(self, scope: Construct, function: lambda_.IFunction, name: str) -> cloudwatch.Alarm:
        """Errors / invocations over 5 minutes above ``errorRatePercent``."""
        from infra.constructs.function import error_rate

        return self._notify(
            cloudwatch.Alarm(
                scope,
                "ErrorRate",
                alarm_description=f"mentor-connections {name}: error rate above {self.config.error_rate_percent}%",
                metric=error_rate(function, PERIOD),
                threshold=self.config.error_rate_percent,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )

    def dlq_alarm(self, scope: Construct, dlq: sqs.IQueue, name: str) -> cloudwatch.Alarm:
        """Any message visible in a dead-letter queue."""
        return self._notify(
            cloudwatch.Alarm(
                scope,
                "DlqDepth",
                alarm_description=f"mentor-connections {name}: messages in the dead-letter queue",
                metric=dlq.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(1), statistic="Maximum"
                ),
                threshold=0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
