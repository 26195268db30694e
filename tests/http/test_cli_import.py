"""`flask crm import-companies` / `import-contacts`: messages, exit codes, --org, all or nothing."""

from __future__ import annotations

from pathlib import Path

from click.testing import Result
from flask import Flask
from sqlalchemy import select

from services import companies
from services.tables import Company, Contact
from services.unit_of_work import UnitOfWorkFactory
from tests.conftest import Tenant, table_counts


def write(tmp_path: Path, text: str, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8", newline="")
    return path


def invoke(app: Flask, command: str, path: Path, *org: str) -> Result:
    args = ["crm", command, str(path)]
    if org:
        args += ["--org", *org]
    return app.test_cli_runner().invoke(args=args)


def company_names(uow_factory: UnitOfWorkFactory, org_id: int) -> list[str]:
    with uow_factory() as uow:
        return sorted(uow.session.scalars(select(Company.name).where(Company.org_id == org_id)))


def test_import_companies_prints_counts(
    app: Flask, uow_factory: UnitOfWorkFactory, tenant: Tenant, tmp_path: Path
) -> None:
    with uow_factory() as uow:
        companies.create_company(uow, tenant.org_id, name="Contoso", domains=["contoso.com"])
        uow.commit()
    path = write(
        tmp_path,
        "\ufeffName,Domains,City\r\nContoso AS,contoso.com,Oslo\r\nFabrikam,fabrikam.com,\r\n"
        "Adventure Works,,Bergen\r\n",
    )
    result = invoke(app, "import-companies", path, str(tenant.org_id))
    assert result.exit_code == 0, result.output
    assert "imported 2 companies, updated 1" in result.stdout
    assert company_names(uow_factory, tenant.org_id) == [
        "Adventure Works",
        "Contoso AS",
        "Fabrikam",
    ]


def test_errors_exit_1_list_every_bad_row_and_write_nothing(
    app: Flask, uow_factory: UnitOfWorkFactory, tenant: Tenant, tmp_path: Path
) -> None:
    before = table_counts(uow_factory)
    path = write(
        tmp_path,
        'name,domains,notes\nGood,good.com,\n,x.com,\nMulti,,"a\nb"\nBad,not_a_domain,\n'
        "Copy,good.com,\n",
    )
    result = invoke(app, "import-companies", path, str(tenant.org_id))
    assert result.exit_code == 1
    assert "nothing imported: 3 row(s) have errors" in result.stderr
    assert "  line 3: name is empty" in result.stderr
    assert "  line 6: not a domain: not_a_domain" in result.stderr
    assert "  line 7: domain good.com is also on line 2, for another company" in result.stderr
    assert "imported" not in result.stdout
    assert table_counts(uow_factory) == before


def test_unknown_column_refuses_the_file(
    app: Flask, uow_factory: UnitOfWorkFactory, tenant: Tenant, tmp_path: Path
) -> None:
    before = table_counts(uow_factory)
    path = write(tmp_path, "name,fax\nContoso,123\n")
    result = invoke(app, "import-companies", path, str(tenant.org_id))
    assert result.exit_code == 1
    assert "line 1: unknown column(s): fax" in result.stderr
    assert table_counts(uow_factory) == before


def test_import_contacts(
    app: Flask, uow_factory: UnitOfWorkFactory, tenant: Tenant, tmp_path: Path
) -> None:
    with uow_factory() as uow:
        contoso = companies.create_company(
            uow, tenant.org_id, name="Contoso", domains=["contoso.com"]
        )
        uow.commit()
    path = write(
        tmp_path,
        "first_name,last_name,emails,company\nAnna,Kowalski,anna@contoso.com,contoso.com\n"
        ",,bob@contoso.com,Contoso\n",
    )
    result = invoke(app, "import-contacts", path, "Northwind")
    assert result.exit_code == 0, result.output
    assert "imported 2 contacts, updated 0" in result.stdout
    with uow_factory() as uow:
        stored = uow.session.execute(
            select(Contact.first_name, Contact.company_id).where(Contact.org_id == tenant.org_id)
        ).all()
    assert sorted(stored) == [("", contoso.id), ("Anna", contoso.id)]


def test_contacts_with_unknown_company_write_nothing(
    app: Flask, uow_factory: UnitOfWorkFactory, tenant: Tenant, tmp_path: Path
) -> None:
    before = table_counts(uow_factory)
    path = write(tmp_path, "emails,company\na@x.example,Nobody\nb@x.example,\n")
    result = invoke(app, "import-contacts", path, str(tenant.org_id))
    assert result.exit_code == 1
    assert "  line 2: unknown company 'Nobody'" in result.stderr
    assert table_counts(uow_factory) == before


def test_org_by_name_or_id_and_left_out_when_alone(
    app: Flask, uow_factory: UnitOfWorkFactory, tenant: Tenant, tmp_path: Path
) -> None:
    assert invoke(app, "import-companies", write(tmp_path, "name\nA\n", "a.csv")).exit_code == 0
    by_name = invoke(app, "import-companies", write(tmp_path, "name\nB\n", "b.csv"), "Northwind")
    assert by_name.exit_code == 0
    assert company_names(uow_factory, tenant.org_id) == ["A", "B"]


def test_org_is_required_among_several_and_must_exist(
    app: Flask,
    uow_factory: UnitOfWorkFactory,
    tenant: Tenant,
    other_tenant: Tenant,
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "name\nA\n")
    left_out = invoke(app, "import-companies", path)
    assert left_out.exit_code == 2
    assert "name the organization with --org" in left_out.output
    unknown = invoke(app, "import-companies", path, "Initech")
    assert unknown.exit_code == 2
    assert "no organization 'Initech'" in unknown.output

    assert invoke(app, "import-companies", path, "Globex").exit_code == 0
    assert company_names(uow_factory, other_tenant.org_id) == ["A"]
    assert company_names(uow_factory, tenant.org_id) == []


def test_header_only_file_imports_nothing(
    app: Flask, uow_factory: UnitOfWorkFactory, tenant: Tenant, tmp_path: Path
) -> None:
    before = table_counts(uow_factory)
    for command, header in (("import-companies", "name,domains"), ("import-contacts", "emails")):
        result = invoke(app, command, write(tmp_path, f"{header}\n"), str(tenant.org_id))
        assert result.exit_code == 0, result.output
        kind = command.removeprefix("import-")
        assert f"imported 0 {kind}, updated 0" in result.stdout
    assert table_counts(uow_factory) == before


def test_empty_file_is_an_error(app: Flask, tenant: Tenant, tmp_path: Path) -> None:
    result = invoke(app, "import-companies", write(tmp_path, ""), str(tenant.org_id))
    assert result.exit_code == 1
    assert "line 1: the file is empty" in result.stderr


def test_progress_bar_with_many_rows(
    app: Flask, uow_factory: UnitOfWorkFactory, tenant: Tenant, tmp_path: Path
) -> None:
    rows = "".join(f"Company {i},c{i}.example\n" for i in range(3000))
    path = write(tmp_path, f'name,domains\n"Multi\nline",\n{rows}')
    result = invoke(app, "import-companies", path, str(tenant.org_id))
    assert result.exit_code == 0, result.output
    assert "imported 3001 companies, updated 0" in result.stdout
    assert table_counts(uow_factory)["company_domains"] == 3000
