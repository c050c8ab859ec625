"""Alarms: every dead-letter queue's depth and every function's error rate, published to the alarm topic."""

from __future__ import annotations

from infra_support import Synth, function_names, refs


def _topic(synth: Synth) -> str:
    (topic_id,) = synth.of_type("AWS::SNS::Topic")
    return topic_id


def test_each_dead_letter_queue_has_a_depth_alarm(synth: Synth) -> None:
    dlqs = {
        qid
        for q in synth.of_type("AWS::SQS::Queue").values()
        if "RedrivePolicy" in q["Properties"]
        for qid in refs(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
    }
    assert len(dlqs) == 2
    alarmed: set[str] = set()
    for alarm in synth.of_type("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if props.get("MetricName") == "ApproximateNumberOfMessagesVisible":
            assert props["Namespace"] == "AWS/SQS"
            assert props["Threshold"] == 0
            assert props["ComparisonOperator"] == "GreaterThanThreshold"
            (dimension,) = props["Dimensions"]
            alarmed |= refs(dimension["Value"])
            assert refs(props["AlarmActions"]) == {_topic(synth)}
    assert alarmed == dlqs


def test_each_function_has_an_error_rate_alarm(synth: Synth) -> None:
    functions = set(function_names(synth).values())
    covered: set[str] = set()
    for alarm in synth.of_type("AWS::CloudWatch::Alarm").values():
        props = alarm["Properties"]
        if "Metrics" not in props:
            continue
        expression = next(m for m in props["Metrics"] if "Expression" in m)
        assert "errors / invocations" in expression["Expression"]
        names = {m["MetricStat"]["Metric"]["MetricName"] for m in props["Metrics"] if "MetricStat" in m}
        assert names == {"Errors", "Invocations"}
        covered |= refs(props["Metrics"]) & functions
        assert props["Threshold"] == 5
        assert props["ComparisonOperator"] == "GreaterThanThreshold"
        assert refs(props["AlarmActions"]) == {_topic(synth)}
    assert covered == functions


def test_alarm_topic_is_encrypted_tls_only_and_mailed(synth: Synth) -> None:
    ((_, topic),) = synth.of_type("AWS::SNS::Topic").items()
    assert "KmsMasterKeyId" in topic["Properties"]
    ((_, subscription),) = synth.of_type("AWS::SNS::Subscription").items()
    assert subscription["Properties"]["Endpoint"] == "ops@mentors.test"
    assert subscription["Properties"]["Protocol"] == "email"
    ((_, policy),) = synth.of_type("AWS::SNS::TopicPolicy").items()
    denies = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)
