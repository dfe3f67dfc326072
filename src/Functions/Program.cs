using Microsoft.Azure.Functions.Worker;
using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using ServerlessClassifier.Functions;

var builder = FunctionsApplication.CreateBuilder(args);
StartupChecks.Run(builder.Configuration);
builder.ConfigureFunctionsWebApplication();
builder.Services.AddApplicationInsightsTelemetryWorkerService().ConfigureFunctionsApplicationInsights();
builder.Services.AddClassifierServices();
builder.Logging.AddClassifierLogFilters();
builder.Build().Run();
