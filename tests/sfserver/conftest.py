from tests.sfserver_fixture import salesforce_server

__all__ = ["salesforce_server"]
