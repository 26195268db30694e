"""CSV import of companies and contacts: upserts, row errors with line numbers, all or nothing."""

from __future__ import annotations

import io
from typing import Any

import pytest
from sqlalchemy import event, select

import bootstrap
from services import companies, contacts, importer
from services.importer import ImportReport, RowError
from services.tables import Company, Contact
from services.text import fold
from services.unit_of_work import UnitOfWorkFactory
from tests.conftest import Tenant, table_counts


def run(
    uow_factory: UnitOfWorkFactory, tenant: Tenant, kind: str, text: str, **kwargs: Any
) -> ImportReport:
    handle = io.StringIO(text, newline="")
    return importer.import_csv(uow_factory, tenant.org_id, kind, handle, **kwargs)


def all_companies(uow_factory: UnitOfWorkFactory, org_id: int) -> dict[str, dict[str, Any]]:
    """name -> every stored field plus its sorted domains."""
    with uow_factory() as uow:
        rows = uow.session.scalars(select(Company).where(Company.org_id == org_id))
        return {
            c.name: {
                "id": c.id,
                "sort_name": c.sort_name,
                "website": c.website,
                "phone": c.phone,
                "city": c.city,
                "country": c.country,
                "notes": c.notes,
                "domains": [d.domain for d in c.domains],
            }
            for c in rows
        }


def all_contacts(uow_factory: UnitOfWorkFactory, org_id: int) -> dict[str, dict[str, Any]]:
    """first e-mail (or "first last") -> every stored field plus e-mails in position order."""
    with uow_factory() as uow:
        found = {}
        for c in uow.session.scalars(select(Contact).where(Contact.org_id == org_id)):
            emails = [e.email for e in c.emails]
            found[emails[0] if emails else f"{c.first_name} {c.last_name}"] = {
                "id": c.id,
                "first_name": c.first_name,
                "last_name": c.last_name,
                "sort_name": c.sort_name,
                "title": c.title,
                "phone": c.phone,
                "company_id": c.company_id,
                "emails": emails,
                "positions": [e.position for e in c.emails],
            }
        return found


def make_company(
    uow_factory: UnitOfWorkFactory, org_id: int, name: str, *domains: str, **fields: str
) -> int:
    with uow_factory() as uow:
        company = companies.create_company(uow, org_id, name=name, domains=domains, **fields)
        uow.commit()
        return company.id


def make_contact(uow_factory: UnitOfWorkFactory, org_id: int, **fields: Any) -> int:
    with uow_factory() as uow:
        contact = contacts.create_contact(uow, org_id, fields)
        uow.commit()
        return contact.id


def lines(report: ImportReport) -> list[int]:
    return [error.line for error in report.errors]


def message(report: ImportReport, line: int) -> str:
    (found,) = [error.message for error in report.errors if error.line == line]
    return found


class TestCompanies:
    def test_creates_companies_with_every_column(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant
    ) -> None:
        report = run(
            uow_factory,
            tenant,
            "companies",
            "name,domains,website,phone,city,country,notes\n"
            '"  Café  Ærø ","WWW.Aero.no; aero.com  aero-bryggeri.no",https://aero.no,+47 1,'
            'Ærøskøbing,Denmark,"Brewery, ""craft"", since 1901"\n'
            "Contoso Ltd,,,,,,\n",
        )
        assert report == ImportReport(created=2, updated=0, errors=[])
        stored = all_companies(uow_factory, tenant.org_id)
        assert stored["Café Ærø"] == {
            "id": stored["Café Ærø"]["id"],
            "sort_name": "cafe aero",
            "website": "https://aero.no",
            "phone": "+47 1",
            "city": "Ærøskøbing",
            "country": "Denmark",
            "notes": 'Brewery, "craft", since 1901',
            "domains": ["aero-bryggeri.no", "aero.com", "aero.no"],
        }
        assert stored["Contoso Ltd"]["domains"] == []
        assert stored["Contoso Ltd"]["sort_name"] == "contoso ltd"
        # The imported companies are found like any other.
        with uow_factory() as uow:
            by_domain = companies.companies_by_domain(uow, tenant.org_id, ["aero.com"])
            assert by_domain["aero.com"].name == "Café Ærø"

    def test_imported_and_renamed_companies_are_found_by_search(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant
    ) -> None:
        make_company(uow_factory, tenant.org_id, "Old Name", "renamed.example")
        report = run(
            uow_factory,
            tenant,
            "companies",
            "name,domains\nNordisk Bryggeri AS,\nFresh Brand,renamed.example\n",
        )
        assert report == ImportReport(1, 1, [])
        with uow_factory() as uow:
            found = companies.search_companies(uow, tenant.org_id, "bryg")
            assert [c.name for c in found] == ["Nordisk Bryggeri AS"]
            assert [c.name for c in companies.search_companies(uow, tenant.org_id, "fresh")] == [
                "Fresh Brand"
            ]
            assert companies.search_companies(uow, tenant.org_id, "old") == []

    def test_upsert_by_domain_overwrites_filled_fields_and_merges_domains(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant
    ) -> None:
        company_id = make_company(
            uow_factory, tenant.org_id, "Contoso Ltd", "contoso.com", city="Oslo", phone="1"
        )
        report = run(
            uow_factory,
            tenant,
            "companies",
            "name,domains,city,country,phone\nContoso AS,contoso.no;CONTOSO.com,,Norway,2\n",
        )
        assert report == ImportReport(created=0, updated=1, errors=[])
        stored = all_companies(uow_factory, tenant.org_id)
        assert list(stored) == ["Contoso AS"]
        assert stored["Contoso AS"]["id"] == company_id
        assert stored["Contoso AS"]["sort_name"] == "contoso as"
        assert stored["Contoso AS"]["city"] == "Oslo"  # empty cell: left alone
        assert stored["Contoso AS"]["country"] == "Norway"
        assert stored["Contoso AS"]["phone"] == "2"
        assert stored["Contoso AS"]["domains"] == ["contoso.com", "contoso.no"]

    def test_upsert_by_folded_name(self, uow_factory: UnitOfWorkFactory, tenant: Tenant) -> None:
        company_id = make_company(uow_factory, tenant.org_id, "Café Ærø Bryggeri", "aero.no")
        report = run(
            uow_factory,
            tenant,
            "companies",
            "name,domains,city\nCAFE aero  bryggeri,aero.dk,Oslo\n",
        )
        assert report == ImportReport(created=0, updated=1, errors=[])
        stored = all_companies(uow_factory, tenant.org_id)
        assert list(stored) == ["CAFE aero bryggeri"]
        assert stored["CAFE aero bryggeri"]["id"] == company_id
        assert stored["CAFE aero bryggeri"]["domains"] == ["aero.dk", "aero.no"]
        assert stored["CAFE aero bryggeri"]["city"] == "Oslo"

    def test_known_domain_wins_over_name(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant
    ) -> None:
        by_domain = make_company(uow_factory, tenant.org_id, "Fabrikam", "fabrikam.com")
        by_name = make_company(uow_factory, tenant.org_id, "Contoso")
        report = run(uow_factory, tenant, "companies", "name,domains\nContoso,fabrikam.com\n")
        assert report.updated == 1
        with uow_factory() as uow:
            stored = {
                c.id: (c.name, [d.domain for d in c.domains])
                for c in uow.session.scalars(select(Company).where(Company.org_id == tenant.org_id))
            }
        assert stored == {by_domain: ("Contoso", ["fabrikam.com"]), by_name: ("Contoso", [])}

    def test_two_existing_companies_with_the_name_means_a_new_one(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant
    ) -> None:
        make_company(uow_factory, tenant.org_id, "Acme")
        make_company(uow_factory, tenant.org_id, "ACME")
        report = run(uow_factory, tenant, "companies", "name\nacme\n")
        assert report == ImportReport(created=1, updated=0, errors=[])
        assert table_counts(uow_factory)["companies"] == 3

    def test_rows_naming_one_new_company_make_one_company(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant
    ) -> None:
        report = run(
            uow_factory,
            tenant,
            "companies",
            "name,domains,city\nAcme,acme.com,Oslo\nACME,acme.com acme.no,\n",
        )
        assert report == ImportReport(created=1, updated=0, errors=[])
        stored = all_companies(uow_factory, tenant.org_id)
        assert stored["ACME"]["domains"] == ["acme.com", "acme.no"]
        assert stored["ACME"]["city"] == "Oslo"

    def test_reimporting_a_file_updates_instead_of_duplicating(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant
    ) -> None:
        text = "name,domains\nContoso,contoso.com\nFabrikam,\n"
        assert run(uow_factory, tenant, "companies", text) == ImportReport(2, 0, [])
        assert run(uow_factory, tenant, "companies", text) == ImportReport(0, 2, [])
        assert table_counts(uow_factory)["companies"] == 2

    def test_every_bad_row_is_reported_with_its_physical_line(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant
    ) -> None:
        make_company(uow_factory, tenant.org_id, "Contoso", "contoso.com")
        make_company(uow_factory, tenant.org_id, "Fabrikam", "fabrikam.com")
        before = table_counts(uow_factory)
        text = (
            "name,domains,website,notes\n"  # 1
            "Good One,good.com,,\n"  # 2
            ",empty-name.com,,\n"  # 3
            f"{'x' * 201},,,\n"  # 4
            "Bad Domain,not_a_domain;ok.com,,\n"  # 5
            'Multi,,,"first line\n'  # 6
            "second line, with a comma\n"  # 7
            'third"\n'  # 8
            f"Long Site,,{'w' * 501},\n"  # 9
            "Copycat,good.com,,\n"  # 10: good.com is Good One's (line 2)
            "Split,contoso.com;fabrikam.com,,\n"  # 11
            "Short,row\n"  # 12
            "\n"  # 13: blank, skipped
            f"Many,{';'.join(f'd{i}.com' for i in range(51))},,\n"  # 14
            f"Long Notes,,,{'n' * 20_001}\n"  # 15
            ',,,"a bad row\nover two lines"\n'  # 16-17
            "After,bad_domain,,\n"  # 18
        )
        report = run(uow_factory, tenant, "companies", text)
        assert (report.created, report.updated) == (0, 0)
        assert lines(report) == [3, 4, 5, 9, 10, 11, 12, 14, 15, 16, 18]
        assert message(report, 3) == "name is empty"
        assert message(report, 4) == "name is longer than 200 characters"
        assert message(report, 5) == "not a domain: not_a_domain"
        assert message(report, 9) == "website is longer than 500 characters"
        assert message(report, 10) == "domain good.com is also on line 2, for another company"
        assert "contoso.com (company" in message(report, 11)
        assert "fabrikam.com (company" in message(report, 11)
        assert message(report, 12) == "2 values but the header has 4 columns"
        assert message(report, 14) == "more than 50 domains"
        assert message(report, 15) == "notes is longer than 20000 characters"
        assert message(report, 16) == "name is empty"  # where the row starts
        assert message(report, 18) == "not a domain: bad_domain"
        assert table_counts(uow_factory) == before

    def test_all_or_nothing(self, uow_factory: UnitOfWorkFactory, tenant: Tenant) -> None:
        make_company(uow_factory, tenant.org_id, "Contoso", "contoso.com")
        before = table_counts(uow_factory)
        report = run(
            uow_factory,
            tenant,
            "companies",
            "name,domains\nContoso,contoso.no\nAlpha,alpha.com\nBeta,beta.com\nGamma,bad_domain\n",
        )
        assert report == ImportReport(0, 0, [RowError(5, "not a domain: bad_domain")])
        assert table_counts(uow_factory) == before
        assert all_companies(uow_factory, tenant.org_id)["Contoso"]["domains"] == ["contoso.com"]

    def test_database_error_while_writing_leaves_nothing(
        self,
        uow_factory: UnitOfWorkFactory,
        container: bootstrap.Container,
        tenant: Tenant,
    ) -> None:
        before = table_counts(uow_factory)

        def fail_on_domains(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if statement.startswith("INSERT INTO company_domains"):
                raise RuntimeError("disk on fire")

        event.listen(container.engine, "before_cursor_execute", fail_on_domains)
        try:
            with pytest.raises(RuntimeError, match="disk on fire"):
                run(uow_factory, tenant, "companies", "name,domains\nA,a.com\nB,b.com\n")
        finally:
            event.remove(container.engine, "before_cursor_execute", fail_on_domains)
        assert table_counts(uow_factory) == before

    def test_bom_and_header_spelling(self, uow_factory: UnitOfWorkFactory, tenant: Tenant) -> None:
        report = run(
            uow_factory, tenant, "companies", "\ufeff Name ,DOMAINS,  City\nA,a.com,Oslo\n"
        )
        assert report == ImportReport(1, 0, [])
        assert all_companies(uow_factory, tenant.org_id)["A"]["city"] == "Oslo"

    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            (
                "name,fax,E-Mail",
                "unknown column(s): fax, e-mail (known: name, domains, website, phone, city, "
                "country, notes)",
            ),
            ("domains,city", "missing column: name"),
            ("name,Name", "column(s) named twice: name"),
            ("name,,city", "unknown column(s): (column 2 has no name)"),
        ],
    )
    def test_bad_header_refuses_the_file(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant, header: str, expected: str
    ) -> None:
        before = table_counts(uow_factory)
        cells = ",".join("x" for _ in header.split(","))
        report = run(uow_factory, tenant, "companies", f"{header}\n{cells}\n")
        assert len(report.errors) == 1
        assert report.errors[0].line == 1
        assert report.errors[0].message.startswith(expected)
        assert table_counts(uow_factory) == before

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("", "the file is empty: the first line must name the columns"),
            ("\nname\nA\n", "the first line is blank: it must name the columns"),
            (" , \n", "the first line is blank: it must name the columns"),
        ],
    )
    def test_the_first_line_must_be_the_header(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant, text: str, expected: str
    ) -> None:
        before = table_counts(uow_factory)
        assert run(uow_factory, tenant, "companies", text).errors == [RowError(1, expected)]
        assert table_counts(uow_factory) == before

    def test_header_only_imports_nothing(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant
    ) -> None:
        calls: list[int] = []
        assert run(uow_factory, tenant, "companies", "name\n", progress=calls.append) == (
            ImportReport(0, 0, [])
        )
        assert calls == []

    def test_broken_quoting_is_reported_at_its_line(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant
    ) -> None:
        before = table_counts(uow_factory)
        report = run(uow_factory, tenant, "companies", 'name,city\n,x\n"A"B,Oslo\nC,Oslo\n')
        assert lines(report) == [2, 3]
        assert message(report, 3).startswith("cannot read the CSV from here on")
        assert table_counts(uow_factory) == before

    def test_nul_character_is_a_row_error(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant
    ) -> None:
        report = run(uow_factory, tenant, "companies", "name,notes\nA,x\x00y\n")
        assert report.errors == [RowError(2, "contains a NUL character")]

    def test_other_organizations_domains_and_names_do_not_match(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        theirs = make_company(uow_factory, other_tenant.org_id, "Contoso", "contoso.com")
        report = run(uow_factory, tenant, "companies", "name,domains\nContoso,contoso.com\n")
        assert report == ImportReport(1, 0, [])
        assert all_companies(uow_factory, tenant.org_id)["Contoso"]["id"] != theirs
        assert all_companies(uow_factory, other_tenant.org_id)["Contoso"]["id"] == theirs

    def test_progress_counts_the_lines_after_the_header(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant
    ) -> None:
        calls: list[int] = []
        rows = "".join(f"Company {i},\n" for i in range(2500))
        text = f'name,notes\nMulti,"a\nb"\n{rows}'
        report = run(uow_factory, tenant, "companies", text, progress=calls.append)
        assert report.created == 2501
        assert len(calls) >= 3  # reported while reading, not once at the end
        assert sum(calls) == 2502  # the quoted two-line field counts both lines

    def test_twenty_thousand_rows(self, uow_factory: UnitOfWorkFactory, tenant: Tenant) -> None:
        make_company(uow_factory, tenant.org_id, "Company 7", "c7.example")
        text = "name,domains,city\n" + "".join(
            f"Company {i},c{i}.example;c{i}-alt.example,City {i % 50}\n" for i in range(20_000)
        )
        report = run(uow_factory, tenant, "companies", text)
        assert report == ImportReport(created=19_999, updated=1, errors=[])
        counts = table_counts(uow_factory)
        assert counts["companies"] == 20_000
        assert counts["company_domains"] == 40_000
        with uow_factory() as uow:
            found = companies.companies_by_domain(uow, tenant.org_id, ["c19999-alt.example"])
            assert found["c19999-alt.example"].name == "Company 19999"
            assert found["c19999-alt.example"].sort_name == fold("Company 19999")


class TestContacts:
    def test_creates_contacts(self, uow_factory: UnitOfWorkFactory, tenant: Tenant) -> None:
        report = run(
            uow_factory,
            tenant,
            "contacts",
            "first_name,last_name,emails,title,phone\n"
            " Anna , Kowalski ,Anna@Contoso.com; anna.k@contoso.no,Purchasing  manager,+47 2\n"
            ",,solo@example.com,,\n"
            "Øystein,Ærlig,,,\n",
        )
        assert report == ImportReport(3, 0, [])
        stored = all_contacts(uow_factory, tenant.org_id)
        anna = stored["anna@contoso.com"]
        assert (anna["first_name"], anna["last_name"], anna["title"]) == (
            "Anna",
            "Kowalski",
            "Purchasing manager",
        )
        assert anna["emails"] == ["anna@contoso.com", "anna.k@contoso.no"]
        assert anna["positions"] == [0, 1]
        assert anna["sort_name"] == "kowalski anna"
        assert anna["company_id"] is None
        assert stored["solo@example.com"]["sort_name"] == "solo@example.com"
        assert stored["Øystein Ærlig"]["sort_name"] == "aerlig oystein"
        with uow_factory() as uow:
            found = contacts.find_contact_by_email(uow, tenant.org_id, "ANNA.K@contoso.no")
            assert found.first_name == "Anna"

    def test_upsert_by_email_merges_emails_and_keeps_empty_fields(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant
    ) -> None:
        contact_id = make_contact(
            uow_factory,
            tenant.org_id,
            first_name="Anna",
            last_name="Kowalski",
            title="Buyer",
            emails=["anna@contoso.com", "a@contoso.com"],
        )
        report = run(
            uow_factory,
            tenant,
            "contacts",
            "first_name,last_name,emails,title\n,Nowak,new@contoso.no;ANNA@contoso.com,\n",
        )
        assert report == ImportReport(0, 1, [])
        stored = all_contacts(uow_factory, tenant.org_id)
        assert list(stored) == ["anna@contoso.com"]
        anna = stored["anna@contoso.com"]
        assert anna["id"] == contact_id
        assert (anna["first_name"], anna["last_name"], anna["title"]) == ("Anna", "Nowak", "Buyer")
        assert anna["sort_name"] == "nowak anna"
        assert anna["emails"] == ["anna@contoso.com", "a@contoso.com", "new@contoso.no"]
        assert anna["positions"] == [0, 1, 2]

    def test_company_by_id_name_or_domain(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant
    ) -> None:
        contoso = make_company(uow_factory, tenant.org_id, "Café Contoso", "contoso.com")
        fabrikam = make_company(uow_factory, tenant.org_id, "Fabrikam")
        existing = make_contact(uow_factory, tenant.org_id, emails=["old@x.example"])
        report = run(
            uow_factory,
            tenant,
            "contacts",
            "emails,company\n"
            f"a@x.example,{fabrikam}\n"
            "b@x.example,CAFE contoso\n"
            "c@x.example,www.Contoso.com\n"
            "old@x.example,fabrikam\n",
        )
        assert report == ImportReport(3, 1, [])
        stored = all_contacts(uow_factory, tenant.org_id)
        assert stored["a@x.example"]["company_id"] == fabrikam
        assert stored["b@x.example"]["company_id"] == contoso
        assert stored["c@x.example"]["company_id"] == contoso
        assert stored["old@x.example"]["company_id"] == fabrikam
        assert stored["old@x.example"]["id"] == existing

    def test_company_errors(self, uow_factory: UnitOfWorkFactory, tenant: Tenant) -> None:
        first = make_company(uow_factory, tenant.org_id, "Acme")
        second = make_company(uow_factory, tenant.org_id, "ACMÉ")
        before = table_counts(uow_factory)
        report = run(
            uow_factory,
            tenant,
            "contacts",
            "emails,company\na@x.example,acme\nb@x.example,Nobody Inc\nc@x.example,999999\n",
        )
        assert report.errors == [
            RowError(2, f"company 'acme' is ambiguous (companies {first}, {second}): use the id"),
            RowError(3, "unknown company 'Nobody Inc'"),
            RowError(4, "unknown company '999999'"),
        ]
        assert table_counts(uow_factory) == before

    def test_other_organizations_companies_cannot_be_named(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        theirs = make_company(uow_factory, other_tenant.org_id, "Globex", "globex.com")
        before = table_counts(uow_factory)
        report = run(
            uow_factory,
            tenant,
            "contacts",
            f"emails,company\na@x.example,{theirs}\nb@x.example,Globex\nc@x.example,globex.com\n",
        )
        assert report.errors == [
            RowError(2, f"unknown company '{theirs}'"),
            RowError(3, "unknown company 'Globex'"),
            RowError(4, "unknown company 'globex.com'"),
        ]
        assert table_counts(uow_factory) == before

    def test_other_organizations_emails_do_not_match(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        theirs = make_contact(uow_factory, other_tenant.org_id, emails=["anna@contoso.com"])
        report = run(uow_factory, tenant, "contacts", "first_name,emails\nAnna,anna@contoso.com\n")
        assert report == ImportReport(1, 0, [])
        assert all_contacts(uow_factory, tenant.org_id)["anna@contoso.com"]["id"] != theirs
        assert (
            all_contacts(uow_factory, other_tenant.org_id)["anna@contoso.com"]["first_name"] == ""
        )

    def test_row_errors(self, uow_factory: UnitOfWorkFactory, tenant: Tenant) -> None:
        make_contact(uow_factory, tenant.org_id, first_name="A", emails=["a@x.example"])
        make_contact(uow_factory, tenant.org_id, first_name="B", emails=["b@x.example"])
        before = table_counts(uow_factory)
        report = run(
            uow_factory,
            tenant,
            "contacts",
            "first_name,last_name,emails,title,phone\n"  # 1
            "Good,Row,good@x.example,,\n"  # 2
            ",,,Boss,\n"  # 3
            "Bad,Mail,not-an-address;ok@x.example,,\n"  # 4
            '"Two\nLines",Name,,,\n'  # 5-6
            f"{'f' * 121},,,,\n"  # 7
            "Copy,Cat,GOOD@x.example,,\n"  # 8
            "Both,Known,a@x.example;b@x.example,,\n"  # 9
            f"Long,Phone,,,{'1' * 65}\n"  # 10
            f"Many,Mails,{';'.join(f'm{i}@x.example' for i in range(21))},,\n",  # 11
        )
        assert lines(report) == [3, 4, 7, 8, 9, 10, 11]
        assert message(report, 3) == "a contact needs a name or an e-mail address"
        assert message(report, 4) == "not an e-mail address: not-an-address"
        assert message(report, 7) == "first_name is longer than 120 characters"
        assert message(report, 8) == "e-mail good@x.example is also on line 2, for another contact"
        assert message(report, 9).startswith("e-mail addresses belong to different contacts: ")
        assert message(report, 10) == "phone is longer than 64 characters"
        assert message(report, 11) == "more than 20 e-mail addresses"
        assert table_counts(uow_factory) == before

    def test_rows_of_one_existing_contact_are_merged(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant
    ) -> None:
        make_contact(uow_factory, tenant.org_id, first_name="A", emails=["a@x.example"])
        report = run(
            uow_factory,
            tenant,
            "contacts",
            "first_name,title,emails\n,Boss,a@x.example;a2@x.example\nAnn,,a@x.example\n",
        )
        assert report == ImportReport(0, 1, [])
        stored = all_contacts(uow_factory, tenant.org_id)["a@x.example"]
        assert (stored["first_name"], stored["title"]) == ("Ann", "Boss")
        assert stored["emails"] == ["a@x.example", "a2@x.example"]

    def test_header_needs_a_name_or_emails_column(
        self, uow_factory: UnitOfWorkFactory, tenant: Tenant
    ) -> None:
        report = run(uow_factory, tenant, "contacts", "title,company\nBoss,Acme\n")
        assert report.errors == [
            RowError(1, "missing column: need first_name, last_name or emails")
        ]

    def test_twenty_thousand_contacts(self, uow_factory: UnitOfWorkFactory, tenant: Tenant) -> None:
        company = make_company(uow_factory, tenant.org_id, "Contoso", "contoso.com")
        text = "first_name,last_name,emails,company\n" + "".join(
            f"First{i},Last{i},p{i}@contoso.com,contoso.com\n" for i in range(20_000)
        )
        report = run(uow_factory, tenant, "contacts", text)
        assert report == ImportReport(20_000, 0, [])
        counts = table_counts(uow_factory)
        assert (counts["contacts"], counts["contact_emails"]) == (20_000, 20_000)
        with uow_factory() as uow:
            found = contacts.find_contact_by_email(uow, tenant.org_id, "p19999@contoso.com")
            assert (found.sort_name, found.company_id) == ("last19999 first19999", company)

        # Updating thousands at once: new titles and a second address, names kept.
        text = "emails,title\n" + "".join(
            f"p{i}@contoso.com;q{i}@contoso.no,Title {i}\n" for i in range(0, 20_000, 8)
        )
        assert run(uow_factory, tenant, "contacts", text) == ImportReport(0, 2_500, [])
        stored = all_contacts(uow_factory, tenant.org_id)["p16@contoso.com"]
        assert (stored["first_name"], stored["sort_name"], stored["title"]) == (
            "First16",
            "last16 first16",
            "Title 16",
        )
        assert (stored["emails"], stored["positions"]) == (
            ["p16@contoso.com", "q16@contoso.no"],
            [0, 1],
        )
        assert all_contacts(uow_factory, tenant.org_id)["p17@contoso.com"]["title"] == ""


def test_unknown_kind_is_a_programming_error(
    uow_factory: UnitOfWorkFactory, tenant: Tenant
) -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        run(uow_factory, tenant, "meetings", "name\n")
